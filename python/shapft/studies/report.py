"""The report of `shapft reproduce`: figures, results.json and report.md.

Everything here is read from the artifacts the pipeline wrote; no number is typed in.
"""
import json
import math

import numpy as np

from ..core import artifacts, budget, model_file, masks, recording
from . import defense_eval
from ..learn import metrics, explain
from .figures import shapft as shapft_figures
from ..core.radioml import CLASSES

BAR_RECOVERED_FRACTION = 0.5          # SHAP-FT must win back at least half of what FGSM took
BAR_GAIN_POINTS = 0.15                # ... and 15 points at eps 0.075 and 0.1
BAR_GAIN_LEVELS = (0.075, 0.1)
# Below this many times chance (1 / 11) the original model's clean accuracy is too low for
# the bars to mean anything: "recovering" accuracy an attack took from a guessing model is noise.
MEANINGFUL_TIMES_CHANCE = 2.0


def _figure_paths(out):
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    return {"fig4": figures / "fig4_shapley_sums.png", "fig5": figures / "fig5_heatmap_confusion.png",
            "fig6": figures / "fig6_confusion_tiny_adv_vs_adv_data.png",
            "fig7": figures / "fig7_accuracy_vs_eps.png"}


def _sums(pipeline, eps):
    content = explain.load(pipeline.shap_values(eps))
    mask = masks.load(pipeline.mask(eps))
    drop, sums, _, _ = masks.find(masks.true_class_values(content), content["labels"], content["predicted"],
                                            eps, mask.get("frame_rule", "auto"), mask.get("normalise", "none"))
    if drop != mask["drop"]:
        raise RuntimeError(f"{pipeline.mask(eps)} does not follow from {pipeline.shap_values(eps)}")
    return sums, drop


def _predictions(module, rec):
    return metrics.predict_logits(module, rec.model_input()).argmax(axis=1)


def figures(pipeline, evaluation_results):
    paths = _figure_paths(pipeline.out)
    levels = pipeline.preset.eps_levels
    shapft_figures.shapley_sums({eps: _sums(pipeline, eps) for eps in levels}, paths["fig4"])
    first = levels[0]
    predicted_values = explain.load(pipeline.shap_values(first, "predicted"))
    shapft_figures.shapley_heatmap_and_confusion(predicted_values["labels"], predicted_values["predicted"],
                                                 predicted_values["shap_values"], paths["fig5"], first)
    original = model_file.load(pipeline.original).module
    tiny_adv = recording.read(pipeline.attacked(first, "tiny-test"))
    adv_data = recording.read(pipeline.attacked(first, "adv-data"))
    confusions = []
    for rec in (tiny_adv, adv_data):
        confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
        np.add.at(confusion, (rec.labels, _predictions(original, rec)), 1)
        confusions.append(confusion)
    shapft_figures.confusion_pair(*confusions, (f"tiny-adv ({len(tiny_adv)} frames), eps {first:g}",
                                                f"adv-data ({len(adv_data)} frames), eps {first:g}"),
                                  paths["fig6"])
    series = {}
    styles = {"original": "k-o", "at_fgsm": "C1-s", "direct": "C2-^", "shapft": "C0-D", "random": "C7--x"}
    names = {"original": "original", "at_fgsm": "AT-FGSM", "direct": "direct fine-tuning",
             "shapft": "SHAP-FT", "random": "random deletion (control)"}
    for method, style in styles.items():
        mean, std = [], []
        for eps in levels:
            entry = evaluation_results[f"{eps:g}"]
            if method == "original":
                mean.append(entry["original"]["attacked"])
                std.append(0.0)
            else:
                summary = defense_eval.summarise(entry[method])["attacked"]
                mean.append(math.nan if summary["mean"] is None else summary["mean"])   # a gap where no model
                std.append(math.nan if summary["std"] is None else summary["std"])
        series[names[method]] = (list(levels), mean, std, style)
    adaptive = [defense_eval.summarise(evaluation_results[f"{eps:g}"]["shapft"])["adaptive"] for eps in levels]
    series["SHAP-FT, FGSM against itself (adaptive)"] = (
        list(levels), [math.nan if a["mean"] is None else a["mean"] for a in adaptive],
        [math.nan if a["std"] is None else a["std"] for a in adaptive], "C0:D")
    shapft_figures.accuracy_vs_eps(series, paths["fig7"], "FGSM on adv-data: the four methods of the paper's "
                                   "Fig. 7, the random control and the adaptive attack")
    return {k: str(v.relative_to(pipeline.out)) for k, v in paths.items()}


def _table_rows(pipeline, evaluation_results):
    rows = []
    for eps in pipeline.preset.eps_levels:
        entry = evaluation_results[f"{eps:g}"]
        summary = {m: defense_eval.summarise(entry[m]) for m in defense_eval.METHODS}
        clean, attacked = entry["original"]["clean"], entry["original"]["attacked"]
        shapft = summary["shapft"]["attacked"]["mean"]
        taken = clean - attacked
        if shapft is None:   # no SHAP-FT model at this eps (Pipeline.deletion_skipped)
            rows.append({"eps": eps, "psr_db": budget.eps_to_psr_db(eps), "m": entry["m"],
                         "frame_rule": entry["frame_rule"], "frames_used": entry["frames_used"],
                         "original_clean": clean, "original_attacked": attacked, "methods": summary,
                         "recovered_fraction": None, "gain_points": None, "shapft_minus_at_fgsm": None,
                         "shapft_minus_random": None, "skipped": entry["skipped"]["shapft"]})
            continue
        row = {"eps": eps, "psr_db": budget.eps_to_psr_db(eps), "m": entry["m"],
               "frame_rule": entry["frame_rule"], "frames_used": entry["frames_used"],
               "original_clean": clean, "original_attacked": attacked,
               "methods": summary,
               "recovered_fraction": (shapft - attacked) / taken if taken > 0 else None,
               "gain_points": shapft - attacked,
               "shapft_minus_at_fgsm": shapft - summary["at_fgsm"]["attacked"]["mean"],
               "shapft_minus_random": shapft - summary["random"]["attacked"]["mean"], "skipped": None}
        rows.append(row)
    return rows


def model_too_weak(rows, classes=len(CLASSES)):
    """The original model's clean accuracy when it is below MEANINGFUL_TIMES_CHANCE x chance
    (the bars then say nothing), else None."""
    clean = min((r["original_clean"] for r in rows if r["original_clean"] is not None), default=None)
    if clean is not None and clean < MEANINGFUL_TIMES_CHANCE / classes:
        return clean
    return None


def _bars(rows):
    weak = model_too_weak(rows)
    if weak is not None:
        return {"meaningful": False,
                "reason": f"the original model's clean accuracy {100 * weak:.1f}% is below "
                          f"{MEANINGFUL_TIMES_CHANCE:g}x chance ({100 * MEANINGFUL_TIMES_CHANCE / len(CLASSES):.1f}%)",
                "recovers_half_at_every_eps": None, "beats_at_fgsm_at_every_eps": None,
                "gains_15_points_at_0.075_and_0.1": None}
    rows = [r for r in rows if r["methods"]["shapft"]["attacked"]["n"]]   # eps without SHAP-FT: no verdict
    recovered = all(r["recovered_fraction"] is not None and r["recovered_fraction"] >= BAR_RECOVERED_FRACTION
                    for r in rows)
    beats_at = all(r["shapft_minus_at_fgsm"] > 0 for r in rows)
    gain_rows = [r for r in rows if any(math.isclose(r["eps"], e) for e in BAR_GAIN_LEVELS)]
    gain = all(r["gain_points"] >= BAR_GAIN_POINTS for r in gain_rows) if gain_rows else None
    return {"meaningful": True, "reason": None,
            "recovers_half_at_every_eps": recovered, "beats_at_fgsm_at_every_eps": beats_at,
            "gains_15_points_at_0.075_and_0.1": gain}


def _pct(value):
    return "n/a" if value is None else f"{100 * value:.1f}"


def _recovered(fraction):
    return "n/a" if fraction is None else f"{100 * fraction:.0f}%"


def _mean_std(summary):
    if summary["n"] == 0:
        return "n/a"
    return f"{100 * summary['mean']:.1f} ± {100 * summary['std']:.1f}" if summary["n"] > 1 else f"{100 * summary['mean']:.1f}"


def markdown(pipeline, rows, bars, figure_paths, stages, distill, leaderboard=None, aft=None):
    p = pipeline.preset
    lines = [f"# gr-shapft reproduce --preset {p.name} (seed {pipeline.seed})", "",
             "Everything below was computed by this run; `commands.log` lists every command.", "",
             "## SHAP-FT on adv-data (FGSM against the original CNN-LSTM)", "",
             f"Accuracy (%) on adv-data ({'6600' if p.name == 'small' else 'micro'} frames). Fine-tuned models: mean ± std over "
             f"seeds {list(p.seeds)} (AT-FGSM: seeds {list(p.at_fgsm_seeds)}). *attacked*: FGSM crafted against the "
             "original model (the paper's setting); *adaptive*: FGSM crafted against the defended model itself "
             "(through the deletion for SHAP-FT and random deletion).", "",
             "| eps | PSR dB | m | frames (rule) | original clean | original attacked | AT-FGSM | direct FT | "
             "SHAP-FT | random deletion | SHAP-FT adaptive | recovered |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["methods"]
        lines.append(f"| {r['eps']:g} | {r['psr_db']:.1f} | {r['m']} | {r['frames_used']} ({r['frame_rule']}) | "
                     f"{_pct(r['original_clean'])} | {_pct(r['original_attacked'])} | "
                     f"{_mean_std(s['at_fgsm']['attacked'])} | {_mean_std(s['direct']['attacked'])} | "
                     f"{_mean_std(s['shapft']['attacked'])} | {_mean_std(s['random']['attacked'])} | "
                     f"{_mean_std(s['shapft']['adaptive'])} | "
                     f"{_recovered(r['recovered_fraction']) if bars['meaningful'] else 'n/a'} |")
    lines += ["", "Clean accuracy of the fine-tuned models on unattacked adv-data (%):", "",
              "| eps | AT-FGSM | direct FT | SHAP-FT | random deletion |", "|---|---|---|---|---|"]
    for r in rows:
        s = r["methods"]
        lines.append(f"| {r['eps']:g} | {_mean_std(s['at_fgsm']['clean'])} | {_mean_std(s['direct']['clean'])} | "
                     f"{_mean_std(s['shapft']['clean'])} | {_mean_std(s['random']['clean'])} |")
    lines += ["", "## The bars", ""]
    if bars["meaningful"]:
        skipped = [r for r in rows if r.get("skipped")]
        if skipped:
            lines += [f"- eps {r['eps']:g}: no verdict, {r['skipped']}" for r in skipped]
        lines += [f"- SHAP-FT recovers at least half of what the attack took, at every eps: "
                  f"**{bars['recovers_half_at_every_eps']}**",
                  f"- SHAP-FT beats AT-FGSM at every eps: **{bars['beats_at_fgsm_at_every_eps']}**",
                  f"- SHAP-FT gains at least 15 points over the original at eps 0.075 and 0.1: "
                  f"**{bars['gains_15_points_at_0.075_and_0.1']}**"]
    else:
        lines += [f"No verdicts: {bars['reason']}, so the model is too weak for the bars to mean "
                  "anything (differences between methods are noise around chance). Train it longer "
                  "or on more data (e.g. `--preset small`)."]
    lines += ["", "## Does SHAP's choice of positions matter?", "",
              "SHAP-FT minus random deletion of the same number of positions (attacked accuracy, points, mean over seeds):", ""]
    for r in rows:
        sh, rd = r["methods"]["shapft"]["attacked"], r["methods"]["random"]["attacked"]
        if r.get("skipped"):
            lines.append(f"- eps {r['eps']:g}: n/a ({r['skipped']})")
            continue
        spread = math.sqrt(sh["std"] ** 2 + rd["std"] ** 2)
        lines.append(f"- eps {r['eps']:g}: {100 * r['shapft_minus_random']:+.1f} (spread of the difference "
                     f"{100 * spread:.1f}, n = {sh['n']})")
    lines += ["", "## Figures", ""] + [f"![{name}]({path})" for name, path in figure_paths.items()]
    if leaderboard is not None:
        lines += ["", "## Robustness leaderboard", "",
                  "From `robustness/leaderboard.json` (`shapft robustness`, docs/robustness.md): each model "
                  "against the standard attack ensemble that knows it, through its deletion for SHAP-FT and "
                  "random deletion.", "", leaderboard, "",
                  "![robust accuracy vs PSR](robustness/robust_vs_psr.png)",
                  "![robust accuracy vs SNR](robustness/robust_vs_snr.png)"]
    if aft:
        lines += ["", "## SHAP-AFT ablation", "",
                  "From `aft/summary.json` (`shapft reproduce --aft`, docs/shapaft.md): adversarial fine-tuning "
                  "alone, after random deletion and after SHAP deletion, with the same recipe, budget and seeds.",
                  "", aft.replace("### ", "### SHAP-AFT ")]
    if distill:
        table = (pipeline.out / "distill" / "distill_table.md").read_text()
        claim = distill.get("claim")
        lines += ["", "## Attention-based adversarial robust distillation", "",
                  "From `distill/distill_results.json` (`shapft distill`, docs/distillation.md).", "", table]
        if claim and claim.get("checked"):
            lines += ["", "The paper's claim on this run (attention-distilled student against each baseline, "
                      "every FGM and PGD budget):", ""]
            lines += [f"- beats {name} at every budget: **{c['beats_at_every_budget']}** "
                      f"(won {c['budgets_won']} of {c['budgets']})" for name, c in claim["comparisons"].items()]
            if "parameter_ratio" in claim:
                lines.append(f"- parameters / teacher's: {claim['parameter_ratio']:.3f} (bar 0.1)")
            lines.append(f"- the claim holds: **{claim['holds']}**")
        lines += [""] + [f"![{name}](distill/{name}.png)"
                         for name in ("distill_budget", "distill_snr", "distill_transfer")]
    lines += ["", "## Timings", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {info['seconds']:.0f} |" for stage, info in stages.items()]
    total = sum(info["seconds"] for info in stages.values())
    lines += [f"| total | {total:.0f} |", ""]
    return "\n".join(lines)


def write(pipeline):
    evaluation_results = json.loads((pipeline.out / "evaluation.json").read_text())
    rows = _table_rows(pipeline, evaluation_results)
    bars = _bars(rows)
    figure_paths = figures(pipeline, evaluation_results)
    stages = pipeline.stages()
    distill_path = pipeline.out / "distill" / "distill_results.json"
    distill = json.loads(distill_path.read_text()) if distill_path.exists() else None
    robustness = pipeline.out / "robustness"
    leaderboard_rows = (json.loads((robustness / "leaderboard.json").read_text())
                        if (robustness / "leaderboard.json").exists() else None)
    leaderboard = None
    if (robustness / "leaderboard.md").exists():   # its headings one level down, under the report's
        leaderboard = "\n".join("#" + line if line.startswith("## ") else line
                                for line in (robustness / "leaderboard.md").read_text().splitlines()
                                if not line.startswith("# ")).strip()
    aft_path = pipeline.out / "aft" / "summary.json"
    aft = json.loads(aft_path.read_text()) if aft_path.exists() else None
    eps_masks = {f"{eps:g}": masks.load(pipeline.mask(eps)) for eps in pipeline.preset.eps_levels}
    results = {"preset": pipeline.preset.name, "seed": pipeline.seed, "shapft": rows, "bars": bars,
               "masks": eps_masks, "figures": figure_paths, "stages": stages, "distillation": distill,
               "robustness": leaderboard_rows, "shapaft": aft}
    artifacts.write_json(pipeline.out / "results.json", results)
    text = markdown(pipeline, rows, bars, figure_paths, stages, distill, leaderboard,
                    (pipeline.out / "aft" / "aft.md").read_text() if aft else None)
    artifacts.write_bytes(pipeline.out / "report.md", text.encode())
    return results
