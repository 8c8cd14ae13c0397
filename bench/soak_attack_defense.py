#!/usr/bin/env python3
"""Soak run of examples/attack_defense.grc: a million frames (or --frames) through
source -> injector -> mask -> three classifier sinks, on the shipped models.

Checks that no frame is lost (frames in = frames scored in every sink) and that the
resident memory stays flat: RSS is sampled every --interval seconds; the report gives
the start (after the first 5 % of frames), the end and the maximum.

Run: .venv/bin/python bench/soak_attack_defense.py [--frames 1000000] [--eps 0.05]
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def compiled_flowgraph(out_dir):
    env = dict(os.environ, GRC_BLOCKS_PATH=str(ROOT / "grc"))
    result = subprocess.run([sys.executable, "/usr/bin/grcc", "-o", out_dir,
                             str(ROOT / "examples" / "attack_defense.grc")], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"grcc failed:\n{result.stdout}{result.stderr}")
    spec = importlib.util.spec_from_file_location("attack_defense", Path(out_dir) / "attack_defense.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.attack_defense


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--interval", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tb = compiled_flowgraph(tmp)(num_frames=args.frames, eps=args.eps, seed=7)
    samples = []   # (seconds, frames so far, RSS MiB)
    done = threading.Event()

    def sample():
        while not done.wait(args.interval):
            samples.append((time.perf_counter() - start, tb.clean.frames_in(), rss_mib()))
            print(f"  {samples[-1][0]:7.0f} s {samples[-1][1]:>9} frames  RSS {samples[-1][2]:7.1f} MiB",
                  flush=True)

    start = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tb.start()
    tb.wait()
    done.set()
    elapsed = time.perf_counter() - start
    end_rss = rss_mib()
    warm = next((s for s in samples if s[1] >= 0.05 * args.frames), samples[0] if samples else (0, 0, end_rss))
    print(f"\n{args.frames} frames, eps {args.eps}, {elapsed:.0f} s ({args.frames / elapsed:,.0f} frames/s)")
    print("| sink | frames in | frames scored | invalid | accuracy |\n|---|---|---|---|---|")
    for sink in (tb.clean, tb.attacked, tb.defended):
        print(f"| {sink.name} | {sink.frames_in()} | {sink.frames_scored()} | {sink.frames_invalid()} | "
              f"{100 * sink.accuracy():.2f}% |")
    print(f"\nRSS after {warm[1]} frames: {warm[2]:.1f} MiB; at the end: {end_rss:.1f} MiB; "
          f"max sampled: {max([s[2] for s in samples] + [end_rss]):.1f} MiB")
    lost = [s.name for s in (tb.clean, tb.attacked, tb.defended) if s.frames_scored() != args.frames]
    if lost:
        sys.exit(f"frames lost in {lost}")


if __name__ == "__main__":
    main()
