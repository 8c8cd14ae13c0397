"""SHAP stage benchmark: the vectorised expected-gradients engine against shap.GradientExplainer.

The paper's configuration: the CNN-LSTM, a background of 5000 tiny-train frames, the 330
tiny-test frames attacked with FGSM (eps 0.05 by default), nsamples 200.

(a) The full 11-output tensor with the same estimator and seed: shap's time / ours, and
    the largest difference between the two tensors.
(b) The negative-point mask: positions whose Shapley value for the TRUE class, summed over
    I/Q and over all frames, is negative. shap's full 200-sample computation is the
    reference; each of our configurations (true class only, batch sizes, fewer draws with
    shap's or stratified alphas) is timed and its negative-point set compared with it.

Run from the repository root:
    PYTHONPATH=<dir holding gnuradio/shapft> .venv/bin/python bench/bench_shap.py
shap's run takes minutes (~1.5 s per frame); --reference FILE.npz keeps its values and time
so a second run can skip it.
"""
import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gnuradio.shapft import attacks
from gnuradio.shapft.learn import explain
from gnuradio.shapft.core import model_file, recording
from gnuradio.shapft.models import CnnLstm

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "examples/models/cnn_lstm.pt"),
                        help="trained model file; an untrained full-size CnnLstm if it does not exist")
    parser.add_argument("--background", default=str(ROOT / "bench/results/tiny/tiny-train.sigmf-meta"),
                        help="tiny-train (default: run_all.sh's bench/results/tiny)")
    parser.add_argument("--data", default=str(ROOT / "bench/results/tiny/tiny-test.sigmf-meta"))
    parser.add_argument("--background-size", type=int, default=5000)
    parser.add_argument("--frames", type=int, default=330, help="frames explained")
    parser.add_argument("--nsamples", type=int, default=200)
    parser.add_argument("--output", choices=explain.OUTPUT_TRANSFORMS, default="softmax")
    parser.add_argument("--fgsm-eps", type=float, default=0.05,
                        help="FGSM the frames first against their true labels (0: clean frames)")
    parser.add_argument("--batch-sizes", default="25,50,100,200",
                        help="our batch sizes tried on the true-class path")
    parser.add_argument("--fewer-nsamples", default="100,50,25",
                        help="fewer draws tried with shap's and with stratified alphas")
    parser.add_argument("--reference", help="npz caching shap's values and time (read if it exists)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    command = "bench/bench_shap.py " + shlex.join(sys.argv[1:])

    model, model_note = load_model(args.model)
    background, frames, labels, data_note = load_frames(args, model)
    print(f"model: {model_note}\ndata: {data_note}\nthreads {args.threads}, seed {args.seed}, "
          f"output {args.output}", flush=True)
    explain.expected_gradients(model, background, frames[:2], nsamples=20)  # TorchScript warm-up
    # the paper's two frame selections for the mask: all frames, or the misclassified ones
    rules = {"all frames": np.ones(len(frames), dtype=bool),
             "misclassified": explain.predicted_classes(model, frames) != labels}

    rows = []
    reference, shap_time = shap_full(args, model, background, frames)
    rows.append(("shap.GradientExplainer, all 11 outputs", "uniform", args.nsamples,
                 explain.SHAP_BATCH_SIZE, shap_time, None))
    with Timer() as timer:
        ours = explain.expected_gradients(model, background, frames, nsamples=args.nsamples,
                                          seed=args.seed, output=args.output)
    difference = np.abs(ours.values - reference).max() / np.abs(reference).max()
    rows.append(("vectorised, all 11 outputs", "shap", args.nsamples, explain.DEFAULT_BATCH_SIZE,
                 timer.times, None))

    reference_true = reference[np.arange(len(frames)), ..., labels]
    reference_sums = {rule: point_sums(reference_true[chosen]) for rule, chosen in rules.items()}
    agreement = {}
    # (alphas, nsamples, batch size, seed): the same estimate at several batch sizes, the same
    # estimator with other draws (how much shap's own mask moves), then fewer draws
    default_batch = explain.DEFAULT_BATCH_SIZE
    configurations = [("shap", args.nsamples, int(b), args.seed) for b in args.batch_sizes.split(",")]
    configurations.append(("shap", args.nsamples, default_batch, args.seed + 1))
    configurations += [(alphas, int(n), default_batch, args.seed)
                       for n in args.fewer_nsamples.split(",") for alphas in ("shap", "stratified")]
    for alphas, nsamples, batch_size, seed in configurations:
        with Timer() as timer:
            true = explain.expected_gradients(model, background, frames, outputs=labels[:, None],
                                              nsamples=nsamples, seed=seed, output=args.output,
                                              alphas=alphas, batch_size=batch_size)
        name = "vectorised, true class only" + ("" if seed == args.seed else f", seed {seed}")
        masks = {}
        for rule, chosen in rules.items():
            sums = point_sums(true.values[chosen, ..., 0])
            negative, reference_negative = np.flatnonzero(sums < 0), np.flatnonzero(reference_sums[rule] < 0)
            disagree = np.setxor1d(negative, reference_negative)
            scale = np.abs(reference_sums[rule]).max()
            masks[rule] = (len(negative), len(disagree))
            agreement[name, alphas, nsamples, batch_size, rule] = (
                disagree, reference_sums[rule][disagree] / scale, sums[disagree] / scale)
        rows.append((name, alphas, nsamples, batch_size, timer.times, masks))

    print_table(command, model_note, data_note, args, rows, shap_time, reference_sums, rules,
                difference)
    print_agreement(agreement, reference_sums, rows, shap_time)


class Timer:
    """Wall-clock and process CPU seconds of a block."""

    def __enter__(self):
        self.start = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.times = (time.perf_counter() - self.start[0], time.process_time() - self.start[1])


def load_model(path):
    if Path(path).exists():
        loaded = model_file.load(path)
        return loaded.module, f"trained {path} (sha256 {loaded.sha256[:12]})"
    torch.manual_seed(0)
    return torch.jit.script(CnnLstm().eval()), "untrained full-size CnnLstm (no trained model file)"


def load_frames(args, model):
    """Background subset, explained frames (FGSM-attacked unless --fgsm-eps 0) and labels."""
    rng = np.random.default_rng(args.seed)
    if Path(args.background).exists() and Path(args.data).exists():
        train, test = recording.read(args.background), recording.read(args.data)
        background = train.subset(np.sort(rng.choice(len(train), args.background_size, replace=False)))
        test = test.subset(np.arange(min(args.frames, len(test))))
        background, frames, labels = background.model_input(), test.model_input(), test.labels
        note = f"{len(frames)} frames of {args.data}, background {len(background)} of {args.background}"
    else:
        def unit_power(n):
            x = rng.normal(size=(n, 2, 128)).astype(np.float32)
            return x / np.sqrt((x ** 2).sum(axis=1, keepdims=True).mean(axis=2, keepdims=True))
        background, frames = unit_power(args.background_size), unit_power(args.frames)
        labels = rng.integers(0, 11, args.frames)
        note = f"{args.frames} random unit-power frames, background {args.background_size} random frames"
    if args.fgsm_eps > 0:
        frames = attacks.attack_array(attacks.make("fgsm", model, eps=args.fgsm_eps), frames, labels)
        note += f", FGSM eps {args.fgsm_eps} against the true labels"
    with torch.no_grad():
        accuracy = (explain.predicted_classes(model, frames) == labels).mean()
    return background, frames, labels, note + f" (model accuracy on them {accuracy:.1%})"


def shap_full(args, model, background, frames):
    """shap's all-output values and (wall, cpu) time, from --reference if it holds them for
    the same settings."""
    settings = np.array([args.nsamples, args.seed, len(frames), len(background)])
    if args.reference and Path(args.reference).exists():
        cached = np.load(args.reference)
        if "settings" in cached.files and np.array_equal(cached["settings"], settings) \
                and cached["output"] == args.output:
            print(f"shap's values and time from {args.reference}", flush=True)
            return cached["values"], tuple(cached["time"])
    print(f"shap.GradientExplainer on {len(frames)} frames ...", flush=True)
    with Timer() as timer:
        result = explain.shap_reference(model, background, frames, nsamples=args.nsamples,
                                        seed=args.seed, output=args.output, progress=True)
    if args.reference:
        np.savez(args.reference, values=result.values, time=np.array(timer.times),
                 settings=settings, output=args.output)
    return result.values, timer.times


def point_sums(true_class_values):
    """[N, 2, L] true-class Shapley values -> [L] sums over frames and I/Q."""
    return true_class_values.sum(axis=(0, 1))


def print_table(command, model_note, data_note, args, rows, shap_time, reference_sums, rules,
                difference):
    print("\n### SHAP stage: vectorised engine vs shap.GradientExplainer\n")
    print(f"`PYTHONPATH=/tmp/devpath .venv/bin/python {command}`  ")
    print(f"{model_note}; {data_note}; explained score: {args.output}; {args.threads} torch "
          "thread(s).  ")
    print(f"Same seed, all 11 outputs: max |ours - shap| / max |shap| = {difference:.1e}.  ")
    for rule, chosen in rules.items():
        print(f"shap's negative points over {rule} ({chosen.sum()} frames): "
              f"m = {(reference_sums[rule] < 0).sum()}.  ")
    names = list(rules)
    print(f"\n| engine, outputs | alphas | nsamples | batch | wall s | CPU s | shap wall / this "
          f"| shap CPU / this | m, {names[0]} (differ) | m, {names[1]} (differ) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, alphas, nsamples, batch, (wall, cpu), masks in rows:
        cells = ["", ""] if masks is None else [f"{m} ({differ})" for m, differ in masks.values()]
        print(f"| {name} | {alphas} | {nsamples} | {batch} | {wall:.1f} | {cpu:.1f} "
              f"| {shap_time[0] / wall:.1f}x | {shap_time[1] / cpu:.1f}x | {' | '.join(cells)} |")


def print_agreement(agreement, reference_sums, rows, shap_time):
    print("\nNegative points against shap's (sums over frames and I/Q, scaled by the largest "
          "|sum| of shap's):")
    for rule, sums in reference_sums.items():
        scaled = np.sort(np.abs(sums) / np.abs(sums).max())
        print(f"- {rule}: shap's smallest scaled |sums| {', '.join(f'{v:.1e}' for v in scaled[:4])}")
    for (name, alphas, nsamples, batch, rule), (disagree, ref, ours) in agreement.items():
        label = f"{name}, {alphas} alphas, nsamples {nsamples}, batch {batch}, {rule}"
        if len(disagree):
            print(f"- {label}: {len(disagree)} positions differ; shap's scaled |sum| there: median "
                  f"{np.median(np.abs(ref)):.1e}, max {np.abs(ref).max():.1e}")
            if len(disagree) <= 10:
                print("  position (shap's vs ours): " + ", ".join(
                    f"{p} ({r:+.1e} vs {o:+.1e})" for p, r, o in zip(disagree, ref, ours)))
        else:
            print(f"- {label}: identical set")
    exact = [row for row in rows if row[5] is not None and "seed" not in row[0]
             and not any(differ for _, differ in row[5].values())]
    if exact:
        fastest = min(exact, key=lambda row: row[4][0])
        print(f"\nFastest configuration with shap's exact negative points (both rules): "
              f"{fastest[1]} alphas, nsamples {fastest[2]}, batch {fastest[3]}: {fastest[4][0]:.1f} s, "
              f"{shap_time[0] / fastest[4][0]:.1f}x faster than shap's full computation "
              f"(CPU {shap_time[1] / fastest[4][1]:.1f}x)")


if __name__ == "__main__":
    main()
