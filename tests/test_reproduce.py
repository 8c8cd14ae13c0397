"""`shapft reproduce --preset micro` end to end: run once without the distillation,
then with --distill (only the distill and report stages run), then again to check
that the third run redoes nothing. The masks are checked against the SHAP values,
the fine-tuned models against their masks, and the evaluation against FGSM on
masked.MaskedClassifier computed here.

The micro run is slow (minutes): it is kept alone in this file so that `ctest -j`
runs it beside the other test files.
"""
import json
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from gnuradio.shapft.core import budget, model_file, masks, recording
from gnuradio.shapft.studies import defense_eval, reproduce
from gnuradio.shapft.learn import metrics, explain
import shapft_testing

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)




# --- `shapft reproduce --preset micro`, twice -------------------------------------------

def snapshot(root):
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """A micro run without the distillation, the same command with --distill (adds the
    distill stage and redoes the report), and that command again: (out dir, the three
    stdouts, files before and after the third run)."""
    out = tmp_path_factory.mktemp("reproduce") / "micro"
    command = [sys.executable, "-m", "gnuradio.shapft.cli", "reproduce", "--preset", "micro", "--out", str(out),
               "--threads", "1", "--quiet"]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MPLBACKEND="Agg")

    def run(extra, timeout):
        result = subprocess.run(command + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, timeout=timeout)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    first = run([], 1500)
    first_results = json.loads((out / "results.json").read_text())
    with_distill = run(["--distill", "--aft"], 1200)
    before = snapshot(out)
    again = run(["--distill", "--aft"], 300)
    return types.SimpleNamespace(out=out, first=first, first_results=first_results, with_distill=with_distill,
                                 second=again, before=before, after=snapshot(out),
                                 pipeline=reproduce.Pipeline(out, reproduce.PRESETS["micro"]))


EPS_LEVELS = reproduce.PRESETS["micro"].eps_levels


def test_reproduce_micro_finishes_with_report_results_figures_masks_and_stages(micro):
    out = micro.out
    for stage in reproduce.STAGES:
        assert (f"[{stage}] finished in" in micro.first) == (stage not in ("aft", "distill"))
    assert "[distill] not asked for (--distill), skipped" in micro.first
    assert "[aft] not asked for (--aft), skipped" in micro.first
    assert micro.first_results["distillation"] is None
    assert f"report: {out / 'report.md'}; results: {out / 'results.json'}" in micro.first
    stages = json.loads((out / "stages.json").read_text())
    assert set(stages) == set(reproduce.STAGES)   # in the order they finished: aft and distill were added later
    assert all(info["seconds"] >= 0 for info in stages.values())
    results = json.loads((out / "results.json").read_text())
    assert results["preset"] == "micro" and results["seed"] == 1
    assert set(results["figures"]) == {"fig4", "fig5", "fig6", "fig7"}
    for relative in results["figures"].values():
        data = (out / relative).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, relative
    report = (out / "report.md").read_text()
    assert report.startswith("# gr-shapft reproduce --preset micro (seed 1)")
    for relative in results["figures"].values():
        assert f"]({relative})" in report
    assert [row["eps"] for row in results["shapft"]] == list(EPS_LEVELS)
    for eps, row in zip(EPS_LEVELS, results["shapft"]):
        mask = masks.load(out / "masks" / f"eps{eps:g}.json")
        assert results["masks"][f"{eps:g}"] == mask
        assert row["m"] == mask["m"] and row["frame_rule"] == mask["frame_rule"]
        assert f"| {eps:g} | {budget.eps_to_psr_db(eps):.1f} | {mask['m']} | {mask['frames_used']} " \
               f"({mask['frame_rule']}) |" in report
    # the leaderboard of the run's models: the original, direct fine-tuning and, at one eps, SHAP-FT,
    # random deletion and AT-FGSM, each model once (identical files are left out)
    board = results["robustness"]
    expected = {path.name: model_file.load(path).sha256 for path in micro.pipeline.robustness_models()}
    assert {row["model"] for row in board} <= set(expected) and "cnn_lstm.pt" in {row["model"] for row in board}
    assert len({row["model_sha256"] for row in board}) == len(board)
    for row in board:
        assert row["model_sha256"] == expected[row["model"]]
        assert row["psr_db"] == -20 and row["n_frames"] > 0
        assert row["robust_accuracy"] <= min(row["per_attack"]["fgsm"], row["clean_accuracy"])
    assert "## Robustness leaderboard" in report and "](robustness/robust_vs_psr.png)" in report
    assert (out / "commands.log").read_text().count("shapft robustness") == 1
    assert results["distillation"] is not None and (out / "distill" / "distill_results.json").exists()
    assert "## Attention-based adversarial robust distillation" in report
    # the SHAP-AFT ablation: at eps 0.1, seed 0, AT-FGSM of the main study and two new fine-tunings
    # (none when the mask deletes nothing: then both are copies of AT-FGSM)
    new = 2 if masks.load(out / "masks" / "eps0.1.json")["m"] else 0
    assert (out / "commands.log").read_text().count("shapft finetune") == 7 + new
    assert "## SHAP-AFT ablation" in report and "| SHAP-AFT (SHAP deletion + AFT) |" in report


def test_reproduce_micro_distill_added_later_runs_only_distill_and_report(micro):
    finished = re.findall(r"\[(\w+)\] finished in", micro.with_distill)
    skipped = re.findall(r"\[(\w+)\] done before", micro.with_distill)
    assert finished == ["aft", "distill", "report"]
    assert skipped == [stage for stage in reproduce.STAGES if stage not in ("aft", "distill", "report")]


def test_reproduce_micro_shap_aft_ablation_scores_match_a_hand_computation(micro):
    from gnuradio.shapft import attacks
    from gnuradio.shapft.learn import metrics
    from gnuradio.shapft.models import masked
    from gnuradio.shapft.studies import shapaft
    settings = shapaft.SETTINGS["micro"]
    summary = json.loads((micro.out / "aft" / "summary.json").read_text())
    entry = summary["eps"]["0.1"]
    assert set(entry["rows"]) == set(shapaft.VARIANTS)
    assert [c["a"] + " vs " + c["b"] for c in entry["comparisons"]] == [f"{a} vs {b}" for a, b, _ in shapaft.COMPARISONS]
    path = shapaft.model_path(micro.pipeline, "shapft+at_fgsm", 0, 0.1)
    loaded = model_file.load(path)
    assert loaded.metadata["training"]["method"] == "shapft+at_fgsm"
    assert loaded.mask == masks.load(micro.pipeline.mask(0.1))
    x, labels = shapaft.frames(micro.pipeline, settings, 1)
    classifier, _ = masked.full_frame_classifier(loaded)
    adaptive = attacks.attack_array(attacks.FGSM(classifier, eps=0.1, seed=1), x, labels)
    row = entry["rows"]["shapft+at_fgsm"]
    assert row["adaptive"]["fgsm"]["values"] == [metrics.model_accuracy(classifier, adaptive, labels)]
    assert row["clean"]["values"] == [metrics.model_accuracy(classifier, x, labels)]
    with np.load(micro.out / "aft" / "transfer" / "eps0.1.npz") as transferred:
        assert transferred["cw-l2"].shape == (settings["cw_frames"], 2, 128)
        expected = metrics.model_accuracy(classifier, transferred["pgd"], labels)
    assert row["transfer"]["pgd"]["values"] == [expected]


def test_reproduce_micro_masks_follow_from_the_shap_values(micro):
    for eps in EPS_LEVELS:
        content = explain.load(micro.pipeline.shap_values(eps))
        assert content["outputs"] == "true"
        np.testing.assert_array_equal(content["output_classes"][:, 0], content["labels"])
        values = content["shap_values"][..., 0]                            # [N, 2, 128], the true class
        error = content["labels"] != content["predicted"]
        selected = np.ones(len(error), bool) if eps <= 0.05 else error     # the paper's rule, by hand
        sums = values[selected].sum(axis=(0, 1))
        mask = masks.load(micro.pipeline.mask(eps))
        assert mask["drop"] == np.flatnonzero(sums < 0).tolist()
        assert mask["frame_rule"] == ("all" if eps <= 0.05 else "error")
        assert mask["frames_used"] == int(selected.sum()) > 0
        assert mask["model_sha256"] == model_file.load(micro.pipeline.original).sha256
        assert 0 < mask["m"] < 128


def test_reproduce_micro_finetuned_models_carry_their_masks(micro):
    p = micro.pipeline
    direct = model_file.load(p.finetuned("direct", 0))
    assert direct.frame_length == 128 and direct.mask is None
    for eps in EPS_LEVELS:
        mask = masks.load(p.mask(eps))
        shapft_model = model_file.load(p.finetuned("shapft", 0, eps))
        assert shapft_model.mask == mask and shapft_model.frame_length == 128 - mask["m"]
        random_model = model_file.load(p.finetuned("random", 0, eps))
        assert random_model.mask["m"] == mask["m"] and random_model.frame_length == 128 - mask["m"]
        assert random_model.mask["drop"] == masks.random_positions(mask["m"], 128, 0)
        assert random_model.mask["drop"] != mask["drop"]
        at_fgsm = model_file.load(p.finetuned("at_fgsm", 0, eps))
        assert at_fgsm.frame_length == 128 and at_fgsm.mask is None
        assert at_fgsm.metadata["training"]["method"] == "at_fgsm"


def test_reproduce_micro_evaluation_matches_a_hand_computation(micro):
    p = micro.pipeline
    results = json.loads((micro.out / "evaluation.json").read_text())
    assert set(results) == {f"{eps:g}" for eps in EPS_LEVELS}
    clean = recording.read(p.tiny / "adv-data.sigmf-meta")
    original = model_file.load(p.original)
    eps = EPS_LEVELS[-1]
    entry = results[f"{eps:g}"]
    attacked = recording.read(p.attacked(eps, "adv-data"))
    delta = attacked.model_input() - clean.model_input()
    assert np.abs(delta).max() == pytest.approx(eps, abs=1e-5)         # FGSM at eps on adv-data
    original_attacked = np.mean(metrics.predict_logits(original.module, attacked.model_input()).argmax(1)
                                == attacked.labels)
    assert entry["original"]["attacked"] == pytest.approx(original_attacked, abs=1e-12)
    mask = masks.load(p.mask(eps))
    assert entry["m"] == mask["m"] and entry["frame_rule"] == mask["frame_rule"]
    loaded = model_file.load(p.finetuned("shapft", 0, eps))
    keep = masks.keep_positions(mask)
    _, adaptive = shapft_testing.hand_adaptive(loaded.module, keep, clean.model_input(), clean.labels, eps)
    score = entry["shapft"]["0"]
    assert score["adaptive"] == pytest.approx(adaptive, abs=1e-12)
    assert score["m"] == mask["m"]
    transferred = np.mean(metrics.predict_logits(loaded.module, attacked.model_input()[:, :, keep]).argmax(1)
                          == attacked.labels)
    assert score["attacked"] == pytest.approx(transferred, abs=1e-12)
    for method in defense_eval.METHODS:
        assert set(entry[method]) == {"0"}


def test_reproduce_micro_second_run_redoes_nothing(micro):
    lines = [line for line in micro.second.splitlines() if line.startswith("[")]
    assert lines == [line for line in lines if re.fullmatch(r"\[(\w+)\] done before \(\d+ s\), skipped", line)]
    assert [re.match(r"\[(\w+)\]", line).group(1) for line in lines] == list(reproduce.STAGES)
    assert "finished in" not in micro.second
    assert micro.after == micro.before                      # same files, same mtimes and sizes
    assert len(micro.before) > 40
