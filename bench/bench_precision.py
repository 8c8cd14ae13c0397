"""fp32 against bfloat16 autocast, per shipped model: batched inference, FGSM crafting
and a training step (Adam, batch 200), timed in alternating rounds (fp32, bf16, fp32,
...) so both see the same machine; the ratio is bf16/fp32 per round, median of rounds.
Beside the speed: on generated frames (every class, 0-18 dB), how often the two agree
on the predicted class and on the sign of FGSM's perturbation, and the accuracy each
gives under FGSM at PSR -20 dB crafted in its own precision (scored in fp32).

    PYTHONPATH=<path with gnuradio/shapft> python bench/bench_precision.py --threads 2
"""
import argparse
import platform
import shlex
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F

from gnuradio.shapft import attacks, models
from gnuradio.shapft.core import model_file, shipped
from gnuradio.shapft.models import precision
from gnuradio.shapft.studies import generate

MODELS = ("cnn_lstm.pt", "transformer_compact_attention_ard.pt", "transformer_large_pgd_at.pt")


def rate(run, frames, seconds):
    """frames/s of `run` over about `seconds` (after two warm-up calls)."""
    run()
    run()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        count += 1
    return frames * count / (time.perf_counter() - start)


def timed(make_run, frames, rounds, seconds):
    """{mode: [frames/s per round]} for fp32 and bf16, alternating."""
    rates = {"fp32": [], "bf16": []}
    for _ in range(rounds):
        for mode in rates:
            rates[mode].append(rate(make_run(mode), frames, seconds))
    return rates


def bench_model(name, x, y, args):
    loaded = model_file.load(shipped.model(name))
    module = loaded.module
    repeats = -(-args.batch // len(x))       # the generated frames, repeated to a full batch
    batch, labels = x.repeat(repeats, 1, 1)[:args.batch], y.repeat(repeats)[:args.batch]

    def inference(mode):
        def run():
            with torch.no_grad(), precision.autocast(mode):
                module(batch)
        return run

    def fgsm(mode):
        attack = attacks.FGSM(module, eps=0.05, precision=mode)
        return lambda: attack(batch, labels)

    trainable = models.build(loaded.arch, frame_length=loaded.frame_length)
    trainable.load_state_dict(module.state_dict())
    optimizer = torch.optim.Adam(trainable.parameters(), lr=1e-4)
    xb, yb = batch[:200], labels[:200]

    def train_step(mode):
        def run():
            optimizer.zero_grad()
            with precision.autocast(mode):
                logits = trainable(xb)
            F.cross_entropy(logits.float(), yb).backward()
            optimizer.step()
        return run

    rows = {}
    for what, make_run, frames in (("inference", inference, len(batch)), ("fgsm", fgsm, len(batch)),
                                   ("train step", train_step, len(xb))):
        trainable.train(what == "train step")
        rates = timed(make_run, frames, args.rounds, args.seconds)
        ratios = [b / f for f, b in zip(rates["fp32"], rates["bf16"])]
        rows[what] = (statistics.median(rates["fp32"]), statistics.median(rates["bf16"]),
                      statistics.median(ratios), min(ratios), max(ratios))

    with torch.no_grad():
        p32 = module(x).argmax(1)
        with precision.autocast("bf16"):
            p16 = module(x).float().argmax(1)
    adv32 = attacks.FGSM(module, psr_db=-20)(x, y)
    adv16 = attacks.FGSM(module, psr_db=-20, precision="bf16")(x, y)
    with torch.no_grad():
        acc32 = (module(adv32).argmax(1) == y).float().mean().item()
        acc16 = (module(adv16).argmax(1) == y).float().mean().item()
        clean = (p32 == y).float().mean().item()
    agreement = {"classes": (p32 == p16).float().mean().item(),
                 "fgsm_sign": (torch.sign(adv32 - x) == torch.sign(adv16 - x)).float().mean().item(),
                 "clean_accuracy": clean, "fgsm_fp32_accuracy": acc32, "fgsm_bf16_accuracy": acc16}
    return rows, agreement


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per round and mode")
    parser.add_argument("--frames-per-setting", type=int, default=10,
                        help="generated frames per class and SNR (0, 6, 12, 18 dB) for agreement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    print(f"$ {shlex.join(['python', *sys.argv])}")
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"native bf16: {precision.native_bf16('cpu')}")
    counts = generate.uniform_counts(args.frames_per_setting, snrs_db=(0, 6, 12, 18))
    data = generate.generate_split(counts, seed=7, split="bench-precision", workers=2, progress=False)
    x, y = torch.from_numpy(data.model_input()), torch.from_numpy(data.labels)
    print(f"{'model':<40} {'work':<11} {'fp32 f/s':>9} {'bf16 f/s':>9} {'bf16/fp32':>9} {'(rounds)':>12}")
    for name in MODELS:
        rows, agreement = bench_model(name, x, y, args)
        for what, (f32, b16, ratio, low, high) in rows.items():
            print(f"{name:<40} {what:<11} {f32:>9,.0f} {b16:>9,.0f} {ratio:>9.2f} {low:>6.2f}-{high:.2f}")
        print(f"{'':<40} agreement on {len(data)} generated frames: classes {100 * agreement['classes']:.1f}%, "
              f"FGSM signs {100 * agreement['fgsm_sign']:.2f}%; clean {100 * agreement['clean_accuracy']:.1f}%, "
              f"FGSM PSR -20 dB from fp32 gradients {100 * agreement['fgsm_fp32_accuracy']:.1f}%, "
              f"from bf16 {100 * agreement['fgsm_bf16_accuracy']:.1f}%")


if __name__ == "__main__":
    main()
