#!/usr/bin/env python3
"""The blocks against the library they adapt, one run, same frames, same batch size.

(a) classifier_sink in a flowgraph (vector source -> head -> sink) against the same
    TorchScript model called on batches outside GNU Radio (target: >= 0.95);
(b) fgsm_injector in a flowgraph (vector source -> head -> injector -> null sink)
    against attacks.FGSM on the same batches (target: >= 0.9).
Every frame carries `label` and `snr_db` tags, as the channel-model source's do: the
sink keeps its running accuracy, the injector takes its labels from the tags, and the
reference attack gets the same labels. The references walk through the same frames in
the same batches, already converted to model input (the blocks convert inside).
Each pair is timed alternately, three times, and the medians compared.

GNU Radio runs every block in a thread of its own, and torch's OpenMP intra-op
parallelism does far less in a thread other than the main one (a model-only check with
no GNU Radio involved: the compact transformer at 2 threads infers ~1.7x faster on the
main thread than in a `threading.Thread`). The reference runs on the main thread, as a
user's script would; a third column runs the same reference in a plain Python thread,
which separates what GNU Radio costs from what any thread costs. Frames/s,
complex samples/s, and whether that keeps up with RadioML 2016.10a's 200 kHz
(1562.5 frames of 128 samples per second).

Run: .venv/bin/python bench/bench_blocks.py [--cnn-lstm MODEL.pt] [--compact MODEL.pt]
(default: full-size untrained models; trained ones cost the same).
"""
import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pmt
import torch
from gnuradio import blocks, gr

from gnuradio.shapft import attacks, classifier_sink, fgsm_injector, model_file, models, testing
from gnuradio.shapft.channel_model_source import LABEL_TAG, SNR_TAG
from gnuradio.shapft.radioml import CLASSES
from gnuradio.shapft.recording import to_model_input

BATCH = 256
REAL_TIME_FRAMES_PER_S = 200e3 / 128
BUFFER_FRAMES = 8192
WARM_UP_CALLS = 3   # TorchScript's profiling executor optimises the graph over the first calls


def full_size_model(arch, directory):
    torch.manual_seed(0)
    model = models.build(arch).eval()
    path = Path(directory) / f"{arch}.pt"
    model_file.save(model, path, model_file.build_metadata(model, arch, 128, {"command": "bench"}))
    return path


def source(frames, labels, n):
    tags = []
    for i, label in enumerate(labels):
        tags.append(gr.tag_utils.python_to_tag((i, LABEL_TAG, pmt.intern(CLASSES[label]))))
        tags.append(gr.tag_utils.python_to_tag((i, SNR_TAG, pmt.from_double(10.0))))
    src = blocks.vector_source_c(frames.reshape(-1).tolist(), True, 128, tags)
    src.set_min_output_buffer(BUFFER_FRAMES)
    head = blocks.head(gr.sizeof_gr_complex * 128, n)
    head.set_min_output_buffer(BUFFER_FRAMES)
    return src, head


def reference_batches(frames, labels, n):
    """The batches the flowgraph sees: the frames cycled, BATCH at a time, as model input."""
    x = torch.from_numpy(to_model_input(frames))
    y = torch.from_numpy(labels)
    index = np.arange(n) % len(frames)
    return [(x[index[i:i + BATCH]], y[index[i:i + BATCH]]) for i in range(0, n, BATCH)]


def sink_flowgraph(model_path, frames, labels, n):
    tb = gr.top_block()
    tb.src, tb.head = source(frames, labels, n)
    tb.sink = classifier_sink(str(model_path), batch_size=BATCH)
    tb.connect(tb.src, tb.head, tb.sink)
    start = time.perf_counter()
    tb.run()
    elapsed = time.perf_counter() - start
    assert tb.sink.frames_scored() == n and tb.sink.tally.frames_labelled == n
    return n / elapsed


def sink_reference(model_path, frames, labels, n):
    module = model_file.load(model_path).module
    work = reference_batches(frames, labels, n)
    with torch.inference_mode():
        for _ in range(WARM_UP_CALLS):  # as the sink does before its first frame
            module(work[0][0])
    start = time.perf_counter()
    with torch.inference_mode():
        for x, _ in work:
            torch.softmax(module(x), 1).max(1)
    return n / (time.perf_counter() - start)


def injector_flowgraph(model_path, frames, labels, n):
    tb = gr.top_block()
    tb.src, tb.head = source(frames, labels, n)
    tb.injector = fgsm_injector(str(model_path), eps=0.05, batch_size=BATCH)
    tb.sink = blocks.null_sink(gr.sizeof_gr_complex * 128)
    tb.connect(tb.src, tb.head, tb.injector, tb.sink)
    start = time.perf_counter()
    tb.run()
    return n / (time.perf_counter() - start)


def injector_reference(model_path, frames, labels, n):
    attack = attacks.FGSM(model_file.load(model_path).module, eps=0.05)
    work = reference_batches(frames, labels, n)
    for _ in range(WARM_UP_CALLS):  # as the injector does before its first frame
        attack(*work[0])
    start = time.perf_counter()
    for x, y in work:
        attack(x, y)
    return n / (time.perf_counter() - start)


def in_a_thread(function, *args):
    """function(*args) run in a plain Python thread (as GNU Radio runs a block's work)."""
    result = []
    worker = threading.Thread(target=lambda: result.append(function(*args)))
    worker.start()
    worker.join()
    return result[0]


def compare(name, flowgraph, reference, model_path, frames, labels, n, target):
    ours, theirs, threaded = [], [], []
    for _ in range(3):
        theirs.append(reference(model_path, frames, labels, n))
        ours.append(flowgraph(model_path, frames, labels, n))
        threaded.append(in_a_thread(reference, model_path, frames, labels, n))
    fg, ref, ref_thread = statistics.median(ours), statistics.median(theirs), statistics.median(threaded)
    keeps_up = "yes" if fg >= REAL_TIME_FRAMES_PER_S else "no"
    print(f"| {name} | {fg:,.0f} | {fg * 128 / 1e6:.2f} | {ref:,.0f} | {fg / ref:.2f} (target {target}) | "
          f"{ref_thread:,.0f} | {fg / ref_thread:.2f} | {keeps_up} ({fg / REAL_TIME_FRAMES_PER_S:.1f}x) |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cnn-lstm", help="cnn_lstm model file")
    parser.add_argument("--compact", help="transformer_compact model file")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frames = testing.random_frames(BUFFER_FRAMES // 4, seed=1)
    labels = np.random.default_rng(1).integers(0, len(CLASSES), len(frames))
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"cnn_lstm": args.cnn_lstm or full_size_model("cnn_lstm", tmp),
                 "transformer_compact": args.compact or full_size_model("transformer_compact", tmp)}
        counts = {"cnn_lstm": (6144, 3072), "transformer_compact": (61440, 30720)}
        print(f"torch threads {args.threads}, batch {BATCH}\n")
        print("| block, model | flowgraph frames/s | Msps | library frames/s | ratio | "
              "library in a thread, frames/s | ratio to it | real time at 200 kHz |")
        print("|---|---|---|---|---|---|---|---|")
        for arch, path in paths.items():
            compare(f"classifier_sink, {arch}", sink_flowgraph, sink_reference, path, frames, labels,
                    counts[arch][0], 0.95)
        for arch, path in paths.items():
            compare(f"fgsm_injector, {arch}", injector_flowgraph, injector_reference, path, frames, labels,
                    counts[arch][1], 0.9)


if __name__ == "__main__":
    main()
