"""Streaming a 2 GB RadioML 2018.01a file: peak memory of `shapft import` and of one epoch
of `shapft train` on what it imports, and the data loader's frames/s against the
training step's.

The HDF5 file is made here in the dataset's layout (X float32 [N, 1024, 2], Y one-hot
over the 24 classes, Z SNR [N, 1], rows sorted by class and SNR), using only the ten
classes with an RML2016.10a counterpart so that the import keeps every row. Each row is
random-phase PSK (the class sets the order, 8 samples a symbol) in Gaussian noise at
its SNR: synthetic frames for a memory and speed benchmark; the trained model's
accuracy means nothing here.

Steps: make the file; `shapft import` it (a subprocess; its peak resident memory is
its ru_maxrss, from os.wait4); delete it; read the train split's shuffled epoch
batch by batch (learn.training.epoch_batches, FrameFile.batch) without a model: the
loader alone; train transformer_compact (the fastest model, so the hardest case for
the loader) on 26,400 frames held in memory: the training step alone; then
`shapft train --epochs 1` on the imported splits (a subprocess: its peak memory and
its epoch's seconds). Everything lives in a temporary directory under --tmp, deleted
at the end.

    python bench/bench_streaming.py [--gigabytes 2] [--threads 1] [--tmp DIR]
"""
import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROW_BYTES = 1024 * 2 * 4                  # one X row: 1024 samples, float32 I and Q
SNRS_DB = np.arange(-20, 31, 2)           # RML2018.01a's 26 SNRs
CHUNK_ROWS = 4096


def make_rml2018a(path, rows_per_cell, seed=0):
    """The HDF5 file: every (class, SNR) cell of the mapped classes, rows_per_cell rows each."""
    import h5py
    from tqdm import tqdm
    from gnuradio.shapft.core.radioml_import import RML2018_CLASSES, RML2018_TO_2016
    classes = [RML2018_CLASSES.index(name) for name in RML2018_TO_2016]
    cells = [(c, snr) for c in classes for snr in SNRS_DB]
    class_of_row = np.repeat([c for c, _ in cells], rows_per_cell)
    snr_of_row = np.repeat([snr for _, snr in cells], rows_per_cell)
    order_of_class = {c: 2 + i for i, c in enumerate(classes)}   # PSK order: 2, 3, ... 11
    n = len(class_of_row)
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        x = f.create_dataset("X", shape=(n, 1024, 2), dtype=np.float32)
        f["Y"] = np.eye(len(RML2018_CLASSES), dtype=np.int64)[class_of_row]
        f["Z"] = snr_of_row.reshape(-1, 1).astype(np.int64)
        for start in tqdm(range(0, n, CHUNK_ROWS), desc="making the HDF5 file", unit="chunk", leave=False):
            stop = min(start + CHUNK_ROWS, n)
            order = np.array([order_of_class[c] for c in class_of_row[start:stop]])[:, None]
            symbols = rng.integers(0, 1 << 20, (stop - start, 128)) % order
            phase = 2 * np.pi * symbols / order + rng.uniform(0, 2 * np.pi, (stop - start, 1))
            signal = np.repeat(np.exp(1j * phase), 8, axis=1)
            noise_power = 10 ** (-snr_of_row[start:stop, None] / 10)
            noise = (rng.standard_normal((stop - start, 1024)) + 1j * rng.standard_normal((stop - start, 1024)))
            samples = 0.01 * (signal + noise * np.sqrt(noise_power / 2))   # RadioML's small scale
            x[start:stop] = np.stack([samples.real, samples.imag], axis=-1).astype(np.float32)
    return n


def run_measured(args):
    """Run a command; (seconds, peak resident memory in bytes, stdout) of that process."""
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{shlex.join(args)} failed with exit code {process.returncode}")
    return seconds, usage.ru_maxrss * 1024, stdout    # ru_maxrss: KiB on Linux


def loader_alone(frames, batch_size, seed):
    """frames/s of reading one shuffled epoch of `frames` a batch at a time, as fit does."""
    import torch
    from gnuradio.shapft.learn import training
    batches = training.epoch_batches(len(frames), batch_size, torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    for batch in batches:
        torch.from_numpy(frames.batch(batch.numpy()))
    return len(frames) / (time.perf_counter() - start)


def training_step_alone(frames, batch_size, count, seed):
    """frames/s of training transformer_compact on `count` frames held in memory (one epoch,
    after a warm-up epoch of two batches)."""
    import torch
    from gnuradio.shapft import models
    from gnuradio.shapft.learn import training
    index = np.sort(np.random.default_rng(seed).choice(len(frames), count, replace=False))
    x, y = frames.batch(index), frames.labels[index]
    torch.manual_seed(seed)
    model = models.build("transformer_compact", frame_length=frames.frame_length)
    config = training.TrainConfig(epochs=1, batch_size=batch_size, seed=seed)
    training.fit(model, (x[:2 * batch_size], y[:2 * batch_size]), (x[:batch_size], y[:batch_size]), config,
                 progress=False)
    start = time.perf_counter()
    training.fit(model, (x, y), (x[:batch_size], y[:batch_size]), config, progress=False)
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, default=2.0, help="size of the HDF5 file's X (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training (default 1)")
    parser.add_argument("--batch-size", type=int, default=200, help="training batch (default 200)")
    parser.add_argument("--step-frames", type=int, default=26400,
                        help="frames of the training-step-alone run (default 26400)")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where the temporary directory goes")
    args = parser.parse_args()

    import torch
    from gnuradio.shapft.core import recording
    torch.set_num_threads(args.threads)
    shapft = [sys.executable, "-m", "gnuradio.shapft.cli"]
    rows_per_cell = int(args.gigabytes * 1e9 / ROW_BYTES / (10 * len(SNRS_DB)))
    work = Path(tempfile.mkdtemp(prefix="bench_streaming.", dir=args.tmp))
    try:
        source, data = work / "GOLD_XYZ_OSC.0001_1024.hdf5", work / "data"
        start = time.perf_counter()
        rows = make_rml2018a(source, rows_per_cell)
        made = time.perf_counter() - start
        hdf5_bytes = source.stat().st_size
        import_seconds, import_peak, said = run_measured(
            [*shapft, "import", str(source), "--out", str(data), "--quiet"])
        print(said.rstrip().replace(str(work), "TMP"))
        source.unlink()
        sigmf_bytes = sum(p.stat().st_size for p in data.iterdir())

        train, _ = recording.check_frames(recording.open_frames(data / "train"))
        loader = loader_alone(train, args.batch_size, seed=0)
        step = training_step_alone(train, args.batch_size, args.step_frames, seed=0)

        model = work / "model.pt"
        train_seconds, train_peak, said = run_measured(
            [*shapft, "train", "--arch", "transformer_compact", "--data", str(data), "--out", str(model),
             "--epochs", "1", "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--quiet"])
        print(said.rstrip().replace(str(work), "TMP"))
        epoch = json.loads(model.with_suffix(".training.json").read_text())["history"][0]["seconds"]
        val_frames = len(recording.open_frames(data / "val"))
    finally:
        shutil.rmtree(work)

    gib = 1 << 30
    print(f"\n`python bench/bench_streaming.py --gigabytes {args.gigabytes:g} --threads {args.threads}` "
          f"({platform.machine()}, torch {torch.__version__}, {args.threads} thread{'s' * (args.threads > 1)}, "
          f"batch {args.batch_size})\n")
    print("| step | data | seconds | peak resident memory |")
    print("|---|---|---:|---:|")
    print(f"| make the HDF5 file (this benchmark) | {rows:,} rows of 1024 samples, {hdf5_bytes / gib:.2f} GiB "
          f"| {made:.0f} | |")
    print(f"| `shapft import` | into {rows * 8:,} frames of 128 samples, "
          f"{sigmf_bytes / gib:.2f} GiB of SigMF | {import_seconds:.0f} | {import_peak / gib:.2f} GiB |")
    print(f"| `shapft train --epochs 1` (transformer_compact) | train {len(train):,}, val {val_frames:,} "
          f"frames | {train_seconds:.0f} (epoch {epoch:.0f}) | {train_peak / gib:.2f} GiB |")
    print(f"\nloader alone (one shuffled epoch of train, batches of {args.batch_size}): {loader:,.0f} frames/s")
    print(f"training step alone (transformer_compact, {args.step_frames:,} frames in memory): {step:,.0f} frames/s")
    print(f"the epoch of `shapft train` (training and validation passes): "
          f"{len(train) / epoch:,.0f} train frames/s; the loader is {loader / step:.0f}x the training step")


if __name__ == "__main__":
    main()
