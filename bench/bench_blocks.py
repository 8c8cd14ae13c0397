#!/usr/bin/env python3
"""The blocks against the library they adapt, same frames, same batch size.

(a) classifier_sink in a flowgraph (vector source -> sink) against the same
    TorchScript model called on batches outside GNU Radio (target: >= 0.95), run
    both ways torch can use N cores: N intra-op threads on one thread, and whole
    batches on N single-thread workers (runtime.BatchWorkers, as the sink
    does); each round's ratio is against the faster of the two;
(b) fgsm_injector in a flowgraph (vector source -> injector -> null sink)
    against attacks.FGSM on the same batches, both ways likewise (target: >= 0.9);
(c) with --detector, attack_detector in a flowgraph (vector source -> detector ->
    null sink) against the detector file's TorchScript module on the same batches,
    both ways likewise (target: >= 0.95);
(d) with --smoothing N, classifier_sink with randomized smoothing over N noisy copies
    against the plain sink: the smoothed rate times N over the plain rate (1.0: the
    smoothing costs exactly N inferences per frame); the smoothed sink's batches hold
    about as many noisy copies as the plain sink's hold frames;
(e) with --onnx, classifier_sink running each model's ONNX export (`shapft export
    --format onnx`) in ONNX Runtime against the same sink running the TorchScript model
    file, same frames, same settings: the ONNX rate over the TorchScript rate.
Every frame carries `label` and `snr_db` tags, as the channel-model source's do: the
sink keeps its running accuracy, the injector takes its labels from the tags, and the
reference attack gets the same labels. The sink is also measured on untagged frames:
GNU Radio's tag handling in the source's thread costs CPU time of its own (printed
as "harness"), which on a 2-core machine the model's threads lose. The references
walk through the same frames in the same batches, already converted to model input
(the blocks convert inside). Both are timed in their steady state: the references
after their warm-up calls, the flowgraphs from when the block has consumed a tenth of
the frames (its warm-up in start() and the filling of the buffers are over) until it
has consumed them all (run_until); runs last seconds.

Every measurement runs in a process of its own (this script with --measure); a round
runs the two references and then the flowgraph(s), --repeats rounds, and the ratio
reported is the median of the rounds' ratios against that round's faster reference
(frames/s: medians of the runs). A process of its own because torch's OpenMP runtime
(libgomp) remembers: once two threads of a process have run parallel torch code, it
counts more OpenMP threads than cores and stops spin-waiting, and a reference run on
the main thread would slow what is measured after it in the same process
(blocks.runtime.load_model). The intra-op reference runs on its process's main
thread, as a user's script would. The blocks get the thread count as their Torch
Threads parameter. Reported: frames/s, complex samples/s, and
whether that keeps up with RadioML 2016.10a's 200 kHz (1562.5 frames of 128 samples
per second).

Run: .venv/bin/python bench/bench_blocks.py [--threads N] [--repeats N] [--only BLOCK:MODEL]
     [--cnn-lstm MODEL.pt] [--compact MODEL.pt] [--detector DETECTOR.pt] [--precision fp32|bf16|auto]
(default: full-size untrained models; trained ones cost the same). With
--compare-precision: each block's flowgraph in fp32 and in bf16, alternating rounds;
with --onnx: the sink's flowgraph with the TorchScript model and its ONNX export,
alternating rounds.
"""
import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pmt
import torch
from gnuradio import blocks, gr

from gnuradio.shapft import attack_detector, attacks, classifier_sink, fgsm_injector, models
from gnuradio.shapft.core import detector_file, model_file, onnx_file
from gnuradio.shapft.models import precision
import shapft_testing
from gnuradio.shapft.blocks.tags import LABEL_TAG, SNR_TAG
from gnuradio.shapft.core.radioml import CLASSES
from gnuradio.shapft.core.recording import to_model_input
from gnuradio.shapft.blocks.runtime import BatchWorkers

BATCH = 256
FRAMES = {"cnn_lstm": (24576, 6144), "transformer_compact": (491520, 122880)}  # sink, injector
REAL_TIME_FRAMES_PER_S = 200e3 / 128
PRECISION = ["fp32"]   # --precision, for the blocks and the library references alike
BUFFER_FRAMES = 8192
START_POLL_S = 0.005
POLL_S = 0.05         # once the clock runs (run_until)
WARM_UP_CALLS = 3   # TorchScript's profiling executor optimises the graph over the first calls


def full_size_model(arch, directory):
    torch.manual_seed(0)
    model = models.build(arch).eval()
    path = Path(directory) / f"{arch}.pt"
    model_file.save(model, path, model_file.build_metadata(model, arch, 128, {"command": "bench"}))
    return path


def bench_frames():
    """(frames, labels) every measurement cycles through."""
    frames = shapft_testing.random_frames(BUFFER_FRAMES // 4, seed=1)
    return frames, np.random.default_rng(1).integers(0, len(CLASSES), len(frames))


def source(frames, labels):
    """Vector source repeating the frames, each tagged with its label (none if labels is
    None) and an SNR."""
    tags = []
    for i, label in enumerate(() if labels is None else labels):
        tags.append(gr.tag_utils.python_to_tag((i, LABEL_TAG, pmt.intern(CLASSES[label]))))
        tags.append(gr.tag_utils.python_to_tag((i, SNR_TAG, pmt.from_double(10.0))))
    src = blocks.vector_source_c(frames.reshape(-1).tolist(), True, 128, tags)
    src.set_min_output_buffer(BUFFER_FRAMES)
    return src


def run_until(tb, counted, n):
    """Run tb until block `counted` has consumed n frames; frames/s in the steady state:
    from the first moment it has consumed a tenth of them (its warm-up in start() and
    the buffers' filling are over, as the references' warm-up is before their clock
    starts) to the end. The flowgraph is stopped from here rather than by a head block:
    head's tag propagation costs CPU time (about 1 us per frame with two tags per
    frame, measured during development), which on a 2-core machine the model's threads
    lose, and no flowgraph of ours has a head block. For the same reason this thread
    polls seldom once the clock runs (the count and the time are read together, so the
    rate does not depend on how often): every 5 ms it took ~1 % of the 2 cores (perf,
    during development), which a flowgraph left to run does not spend."""
    tb.start()
    while (begin := counted.nitems_read(0)) < n // 10:
        time.sleep(START_POLL_S)
    began = time.perf_counter()
    while True:
        time.sleep(POLL_S)
        if (consumed := counted.nitems_read(0)) >= n:
            break
    elapsed = time.perf_counter() - began
    tb.stop()
    tb.wait()
    return (consumed - begin) / elapsed


def reference_batches(frames, labels, n):
    """The batches the flowgraph sees: the frames cycled, BATCH at a time, as model input."""
    x = torch.from_numpy(to_model_input(frames))
    y = torch.from_numpy(labels)
    index = np.arange(n) % len(frames)
    return [(x[index[i:i + BATCH]], y[index[i:i + BATCH]]) for i in range(0, n, BATCH)]


def sink_flowgraph(model_path, frames, labels, n, threads):
    tb = gr.top_block()
    tb.src = source(frames, labels)
    tb.sink = classifier_sink(str(model_path), batch_size=BATCH, num_threads=threads, precision=PRECISION[0])
    tb.connect(tb.src, tb.sink)
    rate = run_until(tb, tb.sink, n)
    scored = tb.sink.frames_scored()
    assert scored == tb.sink.frames_in() >= n and tb.sink.tally.frames_labelled == (0 if labels is None else scored)
    return rate


SMOOTHING = [100]   # --smoothing: noisy copies per frame


def smoothed_batch():
    """The smoothed sink's batch: frames whose noisy copies number about BATCH."""
    return max(1, BATCH // SMOOTHING[0])


def sink_flowgraph_smoothed(model_path, frames, labels, n, threads):
    tb = gr.top_block()
    tb.src = source(frames, labels)
    tb.sink = classifier_sink(str(model_path), batch_size=smoothed_batch(), num_threads=threads,
                              precision=PRECISION[0],
                              smoothing_psr_db=-20.0, smoothing_samples=SMOOTHING[0])
    tb.connect(tb.src, tb.sink)
    rate = run_until(tb, tb.sink, n)
    assert tb.sink.frames_scored() + tb.sink.frames_abstained() == tb.sink.frames_in() >= n
    return rate


def sink_flowgraph_untagged(model_path, frames, labels, n, threads):
    return sink_flowgraph(model_path, frames, None, n, threads)


def intra_op_loop(threads, make_run, work):
    """frames/s of run(batch) over all of work in a plain loop on this thread, torch
    splitting each operation over `threads` threads, after warm-up calls (as the blocks
    warm up before their first frame)."""
    torch.set_num_threads(threads)
    run = make_run()
    for _ in range(WARM_UP_CALLS):
        run(work[0])
    start = time.perf_counter()
    for batch in work:
        run(batch)
    return sum(len(x) for x, _ in work) / (time.perf_counter() - start)


def on_workers(threads, make_run, work):
    """frames/s of run(batch) over all of work, queued at once on `threads` single-thread
    workers (as the blocks do), each warmed up first."""
    run = make_run()

    def warm_up():
        for _ in range(WARM_UP_CALLS):
            run(work[0])

    workers = BatchWorkers(threads, warm_up)
    start = time.perf_counter()
    for done in [workers.submit(run, batch) for batch in work]:
        done.result()
    elapsed = time.perf_counter() - start
    workers.close()
    return sum(len(x) for x, _ in work) / elapsed


def classify(model_path):
    """What the sink does to a batch: the model, softmax, best class."""
    module = model_file.load(model_path).module

    def run(batch):
        with torch.inference_mode():
            with precision.autocast(PRECISION[0]):
                logits = module(batch[0])
            torch.softmax(logits.float(), 1).max(1)
    return run


def fgsm(model_path):
    """What the injector does to a batch: FGSM with the batch's labels."""
    attack = attacks.FGSM(model_file.load(model_path).module, eps=0.05, precision=PRECISION[0])
    return lambda batch: attack(*batch)


def score(detector_path):
    """What the detector block does to a batch: the detector's scores."""
    module = detector_file.load(detector_path).module

    def run(batch):
        with torch.inference_mode(), precision.autocast(PRECISION[0]):
            module(batch[0]).float()
    return run


def detector_flowgraph(detector_path, frames, labels, n, threads):
    tb = gr.top_block()
    tb.src = source(frames, labels)
    tb.detector = attack_detector(str(detector_path), batch_size=BATCH, num_threads=threads, precision=PRECISION[0])
    tb.sink = blocks.null_sink(gr.sizeof_gr_complex * 128)
    tb.connect(tb.src, tb.detector, tb.sink)
    rate = run_until(tb, tb.sink, n)
    assert tb.detector.frames_scored() >= n
    return rate


def reference(way, make_run):
    """A library measurement: make_run's batch function run `way` on the flowgraph's batches."""
    def measure(model_path, frames, labels, n, threads):
        return way(threads, lambda: make_run(model_path), reference_batches(frames, labels, n))
    return measure


def injector_flowgraph(model_path, frames, labels, n, threads):
    tb = gr.top_block()
    tb.src = source(frames, labels)
    tb.injector = fgsm_injector(str(model_path), eps=0.05, batch_size=BATCH, num_threads=threads,
                                precision=PRECISION[0])
    tb.sink = blocks.null_sink(gr.sizeof_gr_complex * 128)
    tb.connect(tb.src, tb.injector, tb.sink)
    return run_until(tb, tb.sink, n)


def harness_cpu_per_frame(frames, labels, n=65536):
    """CPU seconds per frame of the source alone (into a null sink)."""
    tb = gr.top_block()
    tb.src = source(frames, labels)
    tb.sink = blocks.null_sink(gr.sizeof_gr_complex * 128)
    tb.connect(tb.src, tb.sink)
    before = resource.getrusage(resource.RUSAGE_SELF)
    run_until(tb, tb.sink, n)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / tb.sink.nitems_read(0)


MEASUREMENTS = {"sink-flowgraph": sink_flowgraph, "sink-flowgraph-untagged": sink_flowgraph_untagged,
                "sink-flowgraph-smoothed": sink_flowgraph_smoothed,
                "sink-reference": reference(intra_op_loop, classify),
                "sink-reference-workers": reference(on_workers, classify),
                "injector-flowgraph": injector_flowgraph,
                "injector-reference": reference(intra_op_loop, fgsm),
                "injector-reference-workers": reference(on_workers, fgsm),
                "detector-flowgraph": detector_flowgraph,
                "detector-reference": reference(intra_op_loop, score),
                "detector-reference-workers": reference(on_workers, score)}


def measure(kind, model_path, n, threads):
    """One measurement, in this (fresh) process: frames/s. The blocks get the thread
    count as their Torch Threads parameter; the references set it on their thread."""
    return MEASUREMENTS[kind](model_path, *bench_frames(), n, threads)


def in_own_process(kind, model_path, n, threads, mode=None):
    command = [sys.executable, __file__, "--measure", kind, "--model", str(model_path), "--frames", str(n),
               "--threads", str(threads), "--precision", mode or PRECISION[0], "--smoothing", str(SMOOTHING[0])]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return float(result.stdout.split()[-1])


def runs(values):
    return " ".join(f"{v:,.0f}" for v in values)


def compare(block, arch, model_path, threads, repeats, target):
    n = FRAMES[arch][0 if block in ("sink", "detector") else 1]
    references = ["reference", "reference-workers"]
    flowgraphs = ["flowgraph"] + (["flowgraph-untagged"] if block == "sink" else [])
    measured = {kind: [] for kind in references + flowgraphs}
    for _ in range(repeats):
        for kind in measured:
            measured[kind].append(in_own_process(f"{block}-{kind}", model_path, n, threads))
    # The library's best in each round: the faster way of running it outside GNU Radio.
    library = [max(run) for run in zip(*(measured[kind] for kind in references))]
    median = {kind: statistics.median(values) for kind, values in measured.items()}

    def ratio(kind, references=library):
        # Median of each round's ratio: the host's speed drifts between rounds more
        # than within one, so a round compares like with like.
        return statistics.median(ours / ref for ours, ref in zip(measured[kind], references))

    fg, ref = median["flowgraph"], statistics.median(library)
    untagged = (f"{median['flowgraph-untagged']:,.0f} | {ratio('flowgraph-untagged'):.2f}"
                if block == "sink" else "- | -")
    keeps_up = "yes" if fg >= REAL_TIME_FRAMES_PER_S else "no"
    name = {"sink": "classifier_sink", "injector": "fgsm_injector", "detector": "attack_detector"}[block]
    print(f"| {name}, {arch} | {n:,} | {fg:,.0f} | {fg * 128 / 1e6:.2f} | {ref:,.0f} | {ratio('flowgraph'):.2f} (target {target}) | "
          f"{ratio('flowgraph', measured['reference']):.2f} | "
          f"{untagged} | {keeps_up} ({fg / REAL_TIME_FRAMES_PER_S:.1f}x) | "
          f"{' / '.join(runs(measured[kind]) for kind in measured)} |", flush=True)


def compare_smoothing(arch, model_path, threads, repeats):
    """The smoothed sink's rate times N against the plain sink's, alternating rounds."""
    n = FRAMES[arch][0]
    plain, smoothed = [], []
    for _ in range(repeats):
        plain.append(in_own_process("sink-flowgraph", model_path, n, threads))
        # run_until's clock starts after a tenth of the frames: several of the sink's chunks
        # (4 batches per worker) must fit in that tenth, or the rate reads 0
        smoothed.append(in_own_process("sink-flowgraph-smoothed", model_path,
                                       max(n // SMOOTHING[0], 40 * 4 * smoothed_batch() * threads), threads))
    ratios = [s * SMOOTHING[0] / p for p, s in zip(plain, smoothed)]
    print(f"| classifier_sink, {arch} | {SMOOTHING[0]} | {statistics.median(plain):,.0f} | "
          f"{statistics.median(smoothed):,.1f} | {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
          f"{runs(plain)} / {' '.join(f'{v:,.1f}' for v in smoothed)} |", flush=True)


def compare_precision(arch, model_path, threads, repeats):
    """The blocks' flowgraph rate in fp32 and in bf16, alternating, each in a process of its own."""
    for block in ("injector", "sink"):
        n = FRAMES[arch][0 if block == "sink" else 1]
        rates = {"fp32": [], "bf16": []}
        for _ in range(repeats):
            for mode in rates:
                rates[mode].append(in_own_process(f"{block}-flowgraph", model_path, n, threads, mode))
        ratios = [b / f for f, b in zip(rates["fp32"], rates["bf16"])]
        fp32, bf16 = statistics.median(rates["fp32"]), statistics.median(rates["bf16"])
        name = {"sink": "classifier_sink", "injector": "fgsm_injector"}[block]
        print(f"| {name}, {arch} | {n:,} | {fp32:,.0f} | {bf16:,.0f} | {statistics.median(ratios):.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f}) | {bf16 / REAL_TIME_FRAMES_PER_S:.1f}x | "
              f"{runs(rates['fp32'])} / {runs(rates['bf16'])} |", flush=True)


def compare_onnx(arch, model_path, onnx_path, threads, repeats):
    """The sink's flowgraph rate with the ONNX export against the TorchScript model,
    alternating, each in a process of its own."""
    n = FRAMES[arch][0]
    rates = {"torchscript": [], "onnx": []}
    for _ in range(repeats):
        rates["torchscript"].append(in_own_process("sink-flowgraph", model_path, n, threads))
        rates["onnx"].append(in_own_process("sink-flowgraph", onnx_path, n, threads))
    ratios = [o / t for t, o in zip(rates["torchscript"], rates["onnx"])]
    torchscript, onnx = statistics.median(rates["torchscript"]), statistics.median(rates["onnx"])
    error = onnx_file.read_export_record(onnx_path)["check"]["max_abs_logit_error"]
    print(f"| classifier_sink, {arch} | {n:,} | {error:.1e} | {torchscript:,.0f} | {onnx:,.0f} | "
          f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
          f"{onnx / REAL_TIME_FRAMES_PER_S:.1f}x | {runs(rates['torchscript'])} / {runs(rates['onnx'])} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cnn-lstm", help="cnn_lstm model file")
    parser.add_argument("--compact", help="transformer_compact model file")
    parser.add_argument("--detector", help="attack-detector file (its embedded classifier names the row); "
                        "adds the attack_detector row")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--only", choices=[f"{b}:{a}" for b in ("sink", "injector", "detector") for a in FRAMES],
                        help="measure this row only, e.g. sink:transformer_compact")
    parser.add_argument("--precision", choices=precision.PRECISIONS, default="fp32",
                        help="the blocks' and references' precision (default fp32)")
    parser.add_argument("--compare-precision", action="store_true",
                        help="instead: each block's flowgraph rate in fp32 and in bf16, alternating rounds")
    parser.add_argument("--onnx", action="store_true",
                        help="instead: the sink with each model's ONNX export against the TorchScript model")
    parser.add_argument("--smoothing", type=int, metavar="N",
                        help="instead: the sink with randomized smoothing over N noisy copies against the plain sink")
    parser.add_argument("--measure", choices=sorted(MEASUREMENTS), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.onnx and args.precision != "fp32":
        parser.error("--onnx: ONNX models run in fp32 only; leave --precision at fp32")
    PRECISION[0] = args.precision
    if args.smoothing:
        SMOOTHING[0] = args.smoothing
    if args.measure:
        print(measure(args.measure, args.model, args.frames, args.threads))
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"cnn_lstm": args.cnn_lstm or full_size_model("cnn_lstm", tmp),
                 "transformer_compact": args.compact or full_size_model("transformer_compact", tmp)}
        if args.smoothing and not args.measure:
            print(f"torch threads {args.threads}, batch {BATCH}, {args.repeats} rounds alternating the plain and the "
                  "smoothed sink (noise PSR -20 dB), each in a process of its own\n")
            print("| block, model | noisy copies N | plain frames/s | smoothed frames/s | smoothed x N / plain (rounds) | "
                  "runs: plain / smoothed |")
            print("|---|---|---|---|---|---|")
            for arch, path in paths.items():
                if args.only in (None, f"sink:{arch}"):
                    compare_smoothing(arch, path, args.threads, args.repeats)
            return
        if args.onnx:
            print(f"torch threads {args.threads} (the sink's workers; ONNX Runtime runs one thread in each), "
                  f"batch {BATCH}, fp32, {args.repeats} rounds alternating the TorchScript model file and its "
                  f"ONNX export (opset {onnx_file.OPSET}), each in a process of its own\n")
            print("| block, model | frames | export's max logit error | TorchScript frames/s | ONNX frames/s | "
                  "ONNX/TorchScript (rounds) | ONNX real time at 200 kHz | runs: TorchScript / ONNX |")
            print("|---|---|---|---|---|---|---|---|")
            for arch, path in paths.items():
                if args.only in (None, f"sink:{arch}"):
                    onnx_path = Path(tmp) / f"{arch}.onnx"
                    onnx_file.export(model_file.load(path), onnx_path)
                    compare_onnx(arch, path, onnx_path, args.threads, args.repeats)
            return
        if args.compare_precision:
            print(f"torch threads {args.threads}, batch {BATCH}, {args.repeats} rounds alternating fp32 and "
                  "bf16, each in a process of its own\n")
            print("| block, model | frames | fp32 frames/s | bf16 frames/s | bf16/fp32 (rounds) | "
                  "bf16 real time at 200 kHz | runs: fp32 / bf16 |")
            print("|---|---|---|---|---|---|---|")
            for arch, path in paths.items():
                compare_precision(arch, path, args.threads, args.repeats)
            return
        print(f"torch threads {args.threads}, batch {BATCH}, precision {args.precision}, {args.repeats} rounds, "
              f"each in a process of its own")
        frames, labels = bench_frames()
        print(f"harness (vector source -> null sink) CPU time per frame: "
              f"{harness_cpu_per_frame(frames, labels) * 1e6:.2f} us tagged, "
              f"{harness_cpu_per_frame(frames, None) * 1e6:.2f} us untagged\n")
        print("| block, model | frames | flowgraph frames/s | Msps | library frames/s | ratio | ratio to the intra-op loop | "
              "untagged frames/s | ratio | real time at 200 kHz | runs: library (intra-op / workers) / flowgraph (/ untagged) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for block, target in (("sink", 0.95), ("injector", 0.9)):
            for arch, path in paths.items():
                if args.only in (None, f"{block}:{arch}"):
                    compare(block, arch, path, args.threads, args.repeats, target)
        if args.detector:
            arch = detector_file.load(args.detector).protects["arch"]
            if args.only in (None, f"detector:{arch}"):
                compare("detector", arch, args.detector, args.threads, args.repeats, 0.95)


if __name__ == "__main__":
    main()
