#!/usr/bin/env python3
"""Throughput of the channel-model source, and wall time of the dataset presets.

(a) complex samples per second through channel_model_source (11 transmitters, each
    through its own dynamic channel model, framed), against the same transmitters and
    channels into a null sink without framing, in the same run: the ratio is what
    the frame picker costs;
(b) wall time of `shapft generate --preset tiny` and `--preset small`.

Run: .venv/bin/python bench/bench_channel_model.py [--skip-presets]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from gnuradio import blocks, gr

from gnuradio.shapft.blocks import transmitters
from gnuradio.shapft.blocks.channel_model_source import channel_model_source, make_channel
from gnuradio.shapft.core.radioml import CLASSES

SECONDS_OF_SIGNAL = 2.0   # per transmitter, at 200 kHz


def source_rate(window):
    frames = int(SECONDS_OF_SIGNAL * 200e3 / window) * len(CLASSES)
    tb = gr.top_block()
    tb.source = channel_model_source(CLASSES, [10.0], num_frames=frames, seed=1, window=window)
    tb.sink = blocks.null_sink(gr.sizeof_gr_complex * 128)
    tb.connect(tb.source, tb.sink)
    start = time.perf_counter()
    tb.run()
    elapsed = time.perf_counter() - start
    return frames * window / elapsed, frames / elapsed


def raw_chain_rate():
    samples = int(SECONDS_OF_SIGNAL * 200e3)
    tb = gr.top_block()
    tb.chains = []
    for i, name in enumerate(CLASSES):
        tx, ch = transmitters.make_transmitter(name, 10 + i), make_channel(10.0, 20 + i)
        head, sink = blocks.head(gr.sizeof_gr_complex, samples), blocks.null_sink(gr.sizeof_gr_complex)
        tb.connect(tx, ch, head, sink)
        tb.chains.append((tx, ch, head, sink))
    start = time.perf_counter()
    tb.run()
    return len(CLASSES) * samples / (time.perf_counter() - start)


def preset_time(preset):
    with tempfile.TemporaryDirectory() as out:
        shapft = os.path.join(os.path.dirname(sys.executable), "shapft")
        start = time.perf_counter()
        subprocess.run([shapft, "generate", "--preset", preset, "--out", out, "--seed", "1", "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-presets", action="store_true")
    args = parser.parse_args()
    raw = raw_chain_rate()
    print("| measurement | value | ratio to raw chains |\n|---|---|---|")
    print(f"| 11 transmitters + dynamic channel models -> null sink (reference) | {raw / 1e6:.2f} Msps | 1.00 |")
    for window in (256, 1024):
        sps, fps = source_rate(window)
        print(f"| channel_model_source, window {window} | {sps / 1e6:.2f} Msps ({fps:,.0f} frames/s) | {sps / raw:.2f} |")
    if not args.skip_presets:
        for preset in ("tiny", "small"):
            print(f"| `shapft generate --preset {preset}` wall time | {preset_time(preset):.1f} s | |")


if __name__ == "__main__":
    main()
