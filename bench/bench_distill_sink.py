#!/usr/bin/env python3
"""The compact transformer student against the CNN-LSTM, each in a classifier_sink of
the same flowgraph, in one run.

One vector source (random unit-power frames, repeated) -> head (N frames) fans out to
two classifier_sinks: the compact student and cnn_lstm. Both sinks see the same
frames at the same time, so the flowgraph's wall time is the slower sink's. Each
sink's own throughput is frames / CPU seconds of its threads (its block thread and its
worker threads, read from /proc after the warm-up and before the workers end;
classification, softmax, tags and message publishing included): what that sink can
sustain on one core. Not the time inside work(): the sink's workers classify queued
frames while its thread is outside work(). Each sink gets --threads-per-sink workers.

The ratio is student frames/s over cnn_lstm frames/s (target >= 10x). With --publish
both (default) the flowgraph runs twice, with and without one `classification`
message per frame (the per-frame Python message costs the fast model most).

    PYTHONPATH=<dir with gnuradio/shapft> python bench/bench_distill_sink.py \
        --student examples/models/transformer_compact_attention_ard.pt \
        --cnn-lstm examples/models/cnn_lstm.pt

Without --student / --cnn-lstm, freshly initialised full-size models are exported to a
temporary directory (throughput does not depend on the weights).
"""
import argparse
import os
import platform
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from gnuradio import blocks, gr

from gnuradio.shapft.core import model_file
from gnuradio.shapft import models
import shapft_testing
from gnuradio.shapft.blocks.classifier_sink import classifier_sink


def thread_cpu_seconds(native_ids):
    """User + system CPU seconds of these threads of this process, from /proc."""
    ticks = 0
    for native_id in native_ids:
        stat = Path(f"/proc/self/task/{native_id}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()   # after the thread's name: state is fields[0]
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class cpu_timed_sink(classifier_sink):
    """classifier_sink that adds up the CPU time of its threads between start() (after
    the warm-up) and stop()."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.threads = set()
        self.cpu = 0.0

    def _warm_up(self):   # runs in each worker thread
        self.threads.add(threading.get_native_id())
        super()._warm_up()

    def start(self):
        super().start()
        self.threads.add(threading.get_native_id())
        self.cpu = -thread_cpu_seconds(self.threads)
        return True

    def stop(self):
        self.cpu += thread_cpu_seconds(self.threads)   # before the workers end
        return super().stop()


def export_fresh(arch, directory):
    torch.manual_seed(0)
    model = models.build(arch).eval()
    path = os.path.join(directory, f"{arch}_untrained.pt")
    metadata = model_file.build_metadata(model, arch, 128, {"command": "bench_distill_sink (untrained)"})
    model_file.save(model, path, metadata)
    return path


def run_flowgraph(paths, frames, n_frames, batch_size, threads, publish):
    tb = gr.top_block()
    tb.source = blocks.vector_source_c(frames.reshape(-1).tolist(), True, frames.shape[1])
    tb.head = blocks.head(gr.sizeof_gr_complex * frames.shape[1], n_frames)
    tb.head.set_min_output_buffer(4 * batch_size)
    tb.sinks = {name: cpu_timed_sink(path, batch_size=batch_size, num_threads=threads, name=name,
                                 publish=publish) for name, path in paths.items()}
    tb.connect(tb.source, tb.head)
    for sink in tb.sinks.values():
        tb.connect(tb.head, sink)
    start = time.perf_counter()
    tb.run()
    wall = time.perf_counter() - start
    rows = {}
    for name, sink in tb.sinks.items():
        if sink.frames_scored() != n_frames:
            raise RuntimeError(f"{name} scored {sink.frames_scored()} of {n_frames} frames")
        rows[name] = {"frames": sink.frames_scored(), "cpu": sink.cpu,
                      "fps": sink.frames_scored() / sink.cpu,
                      "parameters": sink.model.metadata.get("parameters")}
    return rows, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", help="compact student model file (default: fresh transformer_compact)")
    parser.add_argument("--cnn-lstm", help="CNN-LSTM model file (default: fresh full-size cnn_lstm)")
    parser.add_argument("--frames", type=int, default=20000, help="frames through the flowgraph")
    parser.add_argument("--batch-size", type=int, default=256, help="classifier_sink batch_size")
    parser.add_argument("--threads-per-sink", type=int, default=1, help="worker threads of each sink (its Torch Threads)")
    parser.add_argument("--publish", choices=("both", "on", "off"), default="both",
                        help="classification messages per frame (default: run both ways)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        paths = {"student": args.student or export_fresh("transformer_compact", tmp),
                 "cnn_lstm": args.cnn_lstm or export_fresh("cnn_lstm", tmp)}
        for name, path in paths.items():
            model_file.load(path)   # a clear error before any flowgraph is built
        frames = shapft_testing.random_frames(1000, seed=0)
        modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.publish]
        results = [(publish, *run_flowgraph(paths, frames, args.frames, args.batch_size,
                                            args.threads_per_sink, publish)) for publish in modes]

    command = shlex.join(["python", "bench/bench_distill_sink.py"] + sys.argv[1:])
    load = os.getloadavg()
    print(f"`{command}`\n\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, GNU Radio {gr.version()}, {args.frames} frames, batch "
          f"{args.batch_size}, {args.threads_per_sink} worker thread(s) per sink, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n")
    print(f"student: {paths['student'] if args.student else 'untrained transformer_compact'}; "
          f"cnn_lstm: {paths['cnn_lstm'] if args.cnn_lstm else 'untrained cnn_lstm'}\n")
    print("| messages | model | parameters | frames scored | CPU s | frames per CPU s | flowgraph wall s | "
          "student / cnn_lstm |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for publish, rows, wall in results:
        ratio = rows["student"]["fps"] / rows["cnn_lstm"]["fps"]
        for name in ("student", "cnn_lstm"):
            row = rows[name]
            print(f"| {'on' if publish else 'off'} | {name} | {row['parameters']:,} | {row['frames']} "
                  f"| {row['cpu']:.2f} | {row['fps']:,.0f} | {wall:.2f} | "
                  f"{f'{ratio:.1f}x' if name == 'student' else ''} |")


if __name__ == "__main__":
    main()
