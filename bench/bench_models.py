"""Throughput of each classifier architecture on this machine: batched TorchScript
inference, FGSM crafting (attacks.FGSM) and training (Adam, batch 200).

Training seconds per epoch are extrapolated from --train-batches measured batches
to an epoch of --epoch-frames frames (default 26400: the small preset's train split).
Weights are freshly initialised: throughput does not depend on them.

    PYTHONPATH=<path with gnuradio/shapft> python bench/bench_models.py --threads 2
"""
import argparse
import platform
import shlex
import sys
import time

import torch
import torch.nn.functional as F

from gnuradio.shapft import attacks, models
from gnuradio.shapft.core.radioml import FRAME_LENGTH


def frames_per_second(run, frames, repeats):
    for _ in range(3):  # warm-up: TorchScript's profiling executor optimises over the first calls
        run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return frames * repeats / (time.perf_counter() - start)


def bench(arch, args):
    torch.manual_seed(0)
    model = models.build(arch)
    scripted = torch.jit.script(model.eval())
    x = torch.randn(args.batch, 2, FRAME_LENGTH) * 0.7
    labels = torch.randint(0, 11, (args.batch,))

    def infer():
        with torch.no_grad():
            scripted(x)
    inference = frames_per_second(infer, args.batch, args.repeats)

    fgsm = attacks.FGSM(scripted, eps=0.05)
    crafting = frames_per_second(lambda: fgsm(x, labels), args.batch, args.repeats)

    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    xb, yb = x[:200], labels[:200]

    def train_step():
        optimizer.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        optimizer.step()
    train_step()
    start = time.perf_counter()
    for _ in range(args.train_batches):
        train_step()
    per_frame = (time.perf_counter() - start) / (args.train_batches * len(xb))
    return {"arch": arch, "parameters": models.parameter_count(model), "inference": inference,
            "fgsm": crafting, "epoch_seconds": per_frame * args.epoch_frames}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1024, help="frames per inference/FGSM batch")
    parser.add_argument("--repeats", type=int, default=5, help="timed batches for inference and FGSM")
    parser.add_argument("--train-batches", type=int, default=10, help="timed training batches of 200")
    parser.add_argument("--epoch-frames", type=int, default=26400, help="frames per extrapolated epoch")
    parser.add_argument("--arch", nargs="+", default=list(models.ARCHITECTURES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [bench(arch, args) for arch in args.arch]
    print(f"`{shlex.join(['python', 'bench/bench_models.py'] + sys.argv[1:])}` "
          f"({platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)\n")
    print(f"| architecture | parameters | TorchScript inference (frames/s, batch {args.batch}) "
          f"| FGSM (frames/s, batch {args.batch}) | training s/epoch ({args.epoch_frames} frames, "
          f"batch 200, from {args.train_batches} batches) |")
    print("|---|---:|---:|---:|---:|")
    # Ratios against cnn_lstm measured in the same run (the compact model's target: >= 10x).
    reference = next((r for r in rows if r["arch"] == "cnn_lstm"), None)

    def vs_cnn_lstm(row, key):
        return f" ({row[key] / reference[key]:.1f}x cnn_lstm)" if reference and row is not reference else ""
    for row in rows:
        print(f"| {row['arch']} | {row['parameters']:,} | {row['inference']:,.0f}{vs_cnn_lstm(row, 'inference')} "
              f"| {row['fgsm']:,.0f}{vs_cnn_lstm(row, 'fgsm')} | {row['epoch_seconds']:.1f} |")


if __name__ == "__main__":
    main()
