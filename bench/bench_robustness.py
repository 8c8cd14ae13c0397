"""What the robustness leaderboard (`shapft robustness`, docs/robustness.md) costs, per
model: the leaderboard itself (studies.robustness.run, its default settings unless
given) runs each model at --psr-db (default -20 dB) on a stratified subset of --data,
one model at a time into one directory, as a full run would (the transfer frames a
surrogate crafts are made once and shared). For every attack and threat: the frames it
attacked (the L-inf and L2 cascades attack only the frames still correct), its seconds
as the leaderboard records them, frames/s; per model, wall and CPU seconds. Then the
full default leaderboard's time, extrapolated from these: each model's seconds scaled
to the 4 default PSRs and to the default 2,200 frames, summed over the models measured
(from one PSR this underestimates: a smaller budget leaves more frames to attack; give
--psr-db -30 -25 -20 -15 for the real mix).

--check-pgd50 checks the cascade's strength on the same frames: an independent PGD of
50 steps with 5 random restarts (each on the frames no earlier one broke, seeds of its
own), whose robust accuracy the cascade's must not exceed; it also counts the frames
that PGD breaks and the cascade does not.

    PYTHONPATH=<path with gnuradio/shapft> python bench/bench_robustness.py --data DATA/test.sigmf-meta \\
        --threads 2 --workers 2 [--models cnn_lstm.pt ...] [--psr-db -30 -25 -20 -15] [--check-pgd50]
    PYTHONPATH=... python bench/bench_robustness.py --leaderboard DIR [--check-pgd50 --psr-db -20]
    PYTHONPATH=... python bench/bench_robustness.py --data DATA/test.sigmf-meta --compare-memory cnn_lstm.pt

The second form reads a leaderboard already made (`shapft robustness ... --out DIR`):
the seconds per model, PSR and attack its rows record, and with --check-pgd50 the PGD
check of its rows at --psr-db, with its settings, data and models. The third times
ART's APGD-CE and Square with and without the logits attacks/library.py remembers for
ART (the same frames must come out).

DATA: a recording to attack, e.g. the test split of `shapft generate --preset small --out DATA --seed 1`
(the data the shipped models were trained on).
"""
import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from gnuradio.shapft import attacks
from gnuradio.shapft.core import budget, model_file, shipped
from gnuradio.shapft.core.splits import stratified_subset
from gnuradio.shapft.learn.metrics import predict_logits
from gnuradio.shapft.models.stochastic import ExpectedLogits, is_stochastic
from gnuradio.shapft.studies import robustness, stages

PGD50_STEPS, PGD50_RESTARTS = 50, 5
TUNABLE = ("frames", "pgd_steps", "restarts", "apgd_iterations", "dlr_targets", "square_queries", "uap_epochs",
           "bootstrap")


def shipped_models():
    return sorted(Path(shipped.model("cnn_lstm.pt")).parent.glob("*.pt"))


def model_path(name):
    return Path(name) if Path(name).is_file() else Path(shipped.model(name))


def attacked_frames(row):
    """{attack: frames it ran on}: the cascades' later attacks on the frames still correct."""
    n = row["n_frames"]
    before = {"fgsm": n, "fgm": n}
    for cascade, accuracies in ((robustness.CASCADE, row["per_attack"]), (robustness.CASCADE_L2, row["per_attack_l2"])):
        for previous, attack in zip(cascade, cascade[1:]):
            before[attack] = round(accuracies[previous] * n)
    return {name: before.get(name, n) for name in row["seconds_per_attack"]}


def cascade_survivors(out, loaded, row, clean, labels):
    """Per frame: correct clean and under every attack of the L-inf cascade, from the
    leaderboard's cache (docs/robustness.md: the prediction per frame, -1 where not run)."""
    cache = Path(out) / "cache"
    level = budget.psr_text(row["psr_db"])
    key = robustness.behaviour_sha256(loaded)[:12]
    alive = clean.copy()
    for attack in robustness.CASCADE:
        with np.load(cache / f"{key}_psr{level}_{attack}.npz") as content:
            predictions = content["predictions"].astype(np.int64)
        alive &= (predictions < 0) | (predictions == labels)
    return alive


def pgd50(module, x, labels, eps, precision):
    """Frames that survive PGD (50 steps, 5 restarts) among those classified correctly."""
    alive = predict_logits(module, x, precision=precision).argmax(axis=1) == labels
    for restart in range(PGD50_RESTARTS):
        index = np.flatnonzero(alive)
        if not len(index):
            break
        attack = attacks.make("pgd", module, eps=eps, steps=PGD50_STEPS, seed=1000 + restart, precision=precision)
        x_adv = attacks.attack_array(attack, x[index], labels[index], robustness.BATCH_SIZE)
        alive[index] = predict_logits(module, x_adv, precision=precision).argmax(axis=1) == labels[index]
    return alive


def check_pgd50(loaded, row, out, settings, data):
    rec, _ = stages.read_recording(data, "--data")
    chosen = stratified_subset(rec.labels, rec.snr_db, settings.frames, seed=settings.seed)
    subset = rec.subset(chosen)
    x, labels = subset.model_input(), subset.labels.astype(np.int64)
    module = stages.classifier(loaded, rec.frame_length)
    clean = predict_logits(module, x).argmax(axis=1) == labels
    if is_stochastic(module, x[:robustness.STOCHASTIC_PROBE_FRAMES]):
        module = ExpectedLogits(module, settings.eot_samples).eval()
    eps = budget.psr_db_to_eps(row["psr_db"], "linf", rec.frame_length)
    start = time.perf_counter()
    survives = pgd50(module, x, labels, eps, settings.precision) & clean
    seconds = time.perf_counter() - start
    cascade = cascade_survivors(out, loaded, row, clean, labels)
    return {"pgd50": float(survives.mean()), "cascade": float(cascade.mean()),
            "missed": int((cascade & ~survives).sum()), "seconds": seconds}


def compare_memory(data, model, frames, psr_db, seed=0):
    """APGD-CE and Square (the leaderboard's defaults) through ART with and without the
    logits _Logits remembers (attacks/library.py): the same adversarial frames, and the
    speed ratio, in one run."""
    from gnuradio.shapft.attacks import library
    rec, _ = stages.read_recording(data, "--data")
    subset = rec.subset(stratified_subset(rec.labels, rec.snr_db, frames, seed=seed))
    x, labels = subset.model_input(), subset.labels.astype(np.int64)
    module = stages.classifier(model_file.load(model_path(model)), rec.frame_length)
    eps = budget.psr_db_to_eps(psr_db, "linf", rec.frame_length)
    defaults = robustness.Settings()
    remembered = library.REMEMBERED
    print(f"\n{model}, {len(x)} frames, PSR {psr_db:g} dB: ART with and without remembered logits")
    print("| attack | without (s) | with (s) | speed-up | max abs difference of the adversarial frames |")
    print("|---|---:|---:|---:|---:|")
    for method, options in (("apgd-ce", {"max_iter": defaults.apgd_iterations}),
                            ("square", {"max_iter": defaults.square_queries})):
        results = {}
        for memory in (0, remembered):
            library.REMEMBERED = memory
            attack = library.make(method, module, eps=eps, seed=seed, batch_size=robustness.BATCH_SIZE, **options)
            start = time.perf_counter()
            results[memory] = attacks.attack_array(attack, x, labels, robustness.BATCH_SIZE), time.perf_counter() - start
        library.REMEMBERED = remembered
        (without, t0), (with_, t1) = results[0], results[remembered]
        print(f"| {method} | {t0:.1f} | {t1:.1f} | {t0 / t1:.2f}x | {np.abs(without - with_).max():.3g} |", flush=True)


def print_checks(checks):
    print(f"\nPGD {PGD50_STEPS} steps x {PGD50_RESTARTS} restarts against the cascade (robust accuracy, %):")
    print("| model | PSR | cascade | PGD-50 x 5 | frames PGD breaks, the cascade not | PGD seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row, check in checks:
        verdict = "ok" if check["cascade"] <= check["pgd50"] else "WEAKER"
        print(f"| {name} | {row['psr_db']:g} | {100 * check['cascade']:.1f} | {100 * check['pgd50']:.1f} "
              f"({verdict}) | {check['missed']} | {check['seconds']:.0f} |", flush=True)


def print_seconds(rows):
    """Per model and PSR: each attack's seconds and frames attacked, as the rows record
    them; then each attack's share of the whole."""
    shown = list(rows[0]["seconds_per_attack"])
    print("| model | PSR | clean | robust | " + " | ".join(shown) + " | sum |")
    print("|---|---:|---:|---:|" + "---:|" * (len(shown) + 1))
    per_attack = dict.fromkeys(shown, 0.0)
    for row in rows:
        frames = attacked_frames(row)
        for attack in shown:
            per_attack[attack] += row["seconds_per_attack"][attack]
        print(f"| {row['model']} | {row['psr_db']:g} | {100 * row['clean_accuracy']:.1f} | "
              f"{100 * row['robust_accuracy']:.1f} | "
              + " | ".join(f"{row['seconds_per_attack'][a]:.1f} ({frames[a]})" for a in shown)
              + f" | {sum(row['seconds_per_attack'].values()):.0f} |")
    total = sum(per_attack.values())
    print(f"\nseconds per attack over all rows ({total / 60:.1f} min, transfer crafting counted in every row "
          "it serves): " + ", ".join(f"{a} {v:.0f} s ({100 * v / total:.0f} %)" for a, v in per_attack.items()))


def check_leaderboard(out, levels, check):
    """The time table of an existing leaderboard directory; with `check`, the PGD check
    on its rows at `levels`."""
    out = Path(out)
    rows = json.loads((out / "leaderboard.json").read_text())
    print_seconds(rows)
    if not check:
        return
    record = json.loads((out / "settings.json").read_text())
    settings = robustness.Settings(**{field.name: record["settings"][field.name]
                                      for field in dataclasses.fields(robustness.Settings)})
    paths = {Path(path).name: Path(path) for path in record["models"]}
    print(f"# leaderboard {out}: {record['command']}")
    checks = []
    for row in rows:
        if row["psr_db"] in levels:
            check = check_pgd50(model_file.load(paths[row["model"]]), row, out, settings, record["data"]["path"])
            checks.append((row["model"], row, check))
            print(f"{row['model']} {row['psr_db']:g} dB: cascade {100 * check['cascade']:.1f} %, "
                  f"PGD-50 x 5 {100 * check['pgd50']:.1f} %, {check['seconds']:.0f} s", flush=True)
    print_checks(checks)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="recording (.sigmf-meta), e.g. a generated test split")
    parser.add_argument("--leaderboard", help="a leaderboard directory already made: its time table, and with "
                                              "--check-pgd50 the PGD check of its rows at --psr-db")
    parser.add_argument("--models", nargs="+", help="model files or shipped names (default: all shipped models)")
    parser.add_argument("--psr-db", nargs="+", type=float, default=[-20.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="as shapft robustness")
    parser.add_argument("--quick", action="store_true", help="the leaderboard's --quick preset")
    for name in TUNABLE:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help="as shapft robustness")
    parser.add_argument("--check-pgd50", action="store_true",
                        help=f"compare robust accuracy with PGD, {PGD50_STEPS} steps, {PGD50_RESTARTS} restarts")
    parser.add_argument("--out", help="leaderboard directory, emptied first (default: a temporary one, deleted)")
    parser.add_argument("--compare-memory", metavar="MODEL",
                        help="only time APGD-CE and Square on MODEL with and without the logits ART's wrapper "
                             "remembers, on --frames (default 220) frames at the first --psr-db")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.leaderboard:
        print(f"$ {shlex.join(['python', *sys.argv])}")
        check_leaderboard(args.leaderboard, args.psr_db, args.check_pgd50)
        return
    if not args.data:
        parser.error("--data is required (or --leaderboard)")
    if args.compare_memory:
        print(f"$ {shlex.join(['python', *sys.argv])}")
        compare_memory(args.data, args.compare_memory, args.frames or 220, args.psr_db[0])
        return
    settings = robustness.make_settings(quick=args.quick, **{name: getattr(args, name) for name in TUNABLE})
    default_frames = robustness.Settings().frames
    paths = [model_path(name) for name in args.models] if args.models else shipped_models()
    print(f"$ {shlex.join(['python', *sys.argv])}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} threads, {args.workers} workers, load {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    shown = {k: v for k, v in dataclasses.asdict(settings).items() if k in TUNABLE}
    print(f"# settings: {', '.join(f'{k} {v}' for k, v in shown.items())}{', quick' if settings.quick else ''}; "
          f"PSR {' '.join(f'{p:g}' for p in args.psr_db)} dB")
    with tempfile.TemporaryDirectory(prefix="bench_robustness_") as scratch:
        out = Path(args.out or scratch)
        print(f"\n{'model':<34} {'PSR':>4} {'attack':<11} {'frames':>6} {'seconds':>8} {'frames/s':>9}")
        summary, checks = [], []
        for path in paths:
            cpu, wall = time.process_time(), time.perf_counter()
            board = robustness.run([path], args.data, out, args.psr_db, settings, force=not summary,
                                   progress=False, log=lambda text: None, workers=args.workers)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rows = [row for row in board.rows if row["model"] == path.name]
            for row in rows:
                for attack, frames in attacked_frames(row).items():
                    seconds = row["seconds_per_attack"][attack]
                    print(f"{path.name:<34} {row['psr_db']:>4g} {attack:<11} {frames:>6} {seconds:>8.1f} "
                          f"{frames / max(seconds, 1e-9):>9.1f}")
            scale = len(robustness.DEFAULT_PSR_DB) / len(args.psr_db) * default_frames / rows[0]["n_frames"]
            summary.append((path.name, rows, wall, cpu, wall * scale, cpu * scale))
            if args.check_pgd50:
                for row in rows:
                    checks.append((path.name, row, check_pgd50(model_file.load(path), row, out, settings,
                                                              args.data)))
            print(f"{path.name:<34} {'':>4} {'total':<11} {'':>6} {wall:>8.1f}   (CPU {cpu:.1f} s)", flush=True)

    attacks_shown = list(summary[0][1][0]["seconds_per_attack"])
    print("\n| model | PSR | clean | robust | L2 robust | " + " | ".join(attacks_shown)
          + f" | sum | x {len(robustness.DEFAULT_PSR_DB)} PSRs, {default_frames:,} frames |")
    print("|---|---:|---:|---:|---:|" + "---:|" * (len(attacks_shown) + 2))
    for name, rows, wall, cpu, projected, _ in summary:
        for i, row in enumerate(rows):
            frames = attacked_frames(row)
            cells = [f"{row['seconds_per_attack'][a]:.1f} ({frames[a]})" for a in attacks_shown]
            total = sum(row["seconds_per_attack"].values())
            print(f"| {name} | {row['psr_db']:g} | {100 * row['clean_accuracy']:.1f} | "
                  f"{100 * row['robust_accuracy']:.1f} | {100 * row['robust_accuracy_l2']:.1f} | "
                  + " | ".join(cells) + f" | {total:.0f} s | "
                  + (f"{projected / 60:.1f} min |" if i == 0 else " |"))
    total_projected = sum(item[4] for item in summary)
    print(f"\ncells: seconds (frames attacked), as the leaderboard records them: transfer includes crafting on "
          "the surrogate, done once per surrogate and PSR for all the models it serves (the walls count it once). "
          f"Full default leaderboard ({len(robustness.DEFAULT_PSR_DB)} PSRs, "
          f"{default_frames} frames) of these {len(summary)} models, extrapolated from the walls above: "
          f"{total_projected / 60:.1f} min ({total_projected / 3600:.2f} h); from their CPU seconds "
          f"({sum(item[3] for item in summary):.0f} s measured): {sum(item[5] for item in summary) / 60:.1f} min")
    if checks:
        print_checks(checks)


if __name__ == "__main__":
    main()
