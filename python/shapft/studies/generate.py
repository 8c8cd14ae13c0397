"""Dataset generation: `channel_model_source` run in short flowgraphs of at most
CHAINS_PER_FLOWGRAPH chains per (modulation, SNR) setting, collected into SigMF recordings.

Seeds derive from (seed, split, class, SNR), so every setting's frames are the same
whatever order or process computes them, and the same seed gives the same bytes.
"""
import math
import os
import threading

import numpy as np
import pmt
from gnuradio import blocks, gr

from ..core import recording as rec
from ..blocks.channel_model_source import (DEFAULT_CHANNEL, channel_model_source, check_snr_convention,
                                           validate_settings)
from ..core.radioml import CLASSES, FRAME_LENGTH, LABEL_TAG_KEY, SNRS_DB
from .jobs import run as run_in_workers

# Frames drawn from one transmitter+channel chain before a new, independent chain is
# used. The channel's fading (1 Hz Doppler) is nearly static over a chain's few
# milliseconds, so fewer frames per chain means more channel diversity per setting.
FRAMES_PER_CHAIN = 4

# Chains in one flowgraph at most; a setting that needs more runs several flowgraphs,
# one after another. Each chain's buffers hold some 15-25 System V shared-memory
# segments (GNU Radio's default double-mapped buffers) and a system allows 4096 in all
# (kernel.shmmni): two workers of 150 chains each (rml2016a's 600 frames) exceed it.
CHAINS_PER_FLOWGRAPH = 32

# Split name -> (frames per class and SNR); 'tiny-test' is handled by spread_counts.
PRESETS = {
    "tiny": {"tiny-train": 35, "tiny-test": None, "adv-data": 30},
    "small": {"train": 120, "val": 40, "test": 40},
    "rml2016a": {"train": 600, "val": 200, "test": 200},
}
TINY_TEST_PER_CLASS = 30
SPLIT_IDS = {"tiny-train": 1, "tiny-test": 2, "adv-data": 3, "train": 4, "val": 5, "test": 6}
DESCRIPTIONS = {
    "tiny-train": "SHAP-FT tiny-train: 35 frames per class and SNR (training and validation)",
    "tiny-test": "SHAP-FT tiny-test: 30 frames per class, SNRs spread over the grid",
    "adv-data": "SHAP-FT adv-data: 30 frames per class and SNR, the set attacked in deployment",
    "train": "training split", "val": "validation split", "test": "test split",
}


def uniform_counts(per_setting, modulations=CLASSES, snrs_db=SNRS_DB):
    return {(m, float(s)): per_setting for m in modulations for s in snrs_db}


def spread_counts(per_class, seed, modulations=CLASSES, snrs_db=SNRS_DB):
    """`per_class` frames per class over the SNR grid: every SNR gets floor or ceil of
    per_class/len(grid); which SNRs get the extra frame is drawn per class."""
    rng = np.random.default_rng([seed, 0x7E57])
    counts = {}
    base, extra = divmod(per_class, len(snrs_db))
    for m in modulations:
        lucky = set(rng.choice(len(snrs_db), size=extra, replace=False).tolist())
        for i, s in enumerate(snrs_db):
            counts[(m, float(s))] = base + (i in lucky)
    return counts


def _setting_seed(seed, split_id, name, snr_db):
    key = [seed, split_id, CLASSES.index(name), int(round(snr_db * 10)) + 1000]
    return int(np.random.SeedSequence(key).generate_state(1)[0] >> 1)


def collect(source, frame_length=FRAME_LENGTH, stop=None):
    """Run a finite frame source (a channel_model_source) to its end: its frames
    (complex64 [n, frame_length]) and the class name of each frame's `label` tag.

    Ctrl-C, or `stop` (a threading or multiprocessing Event) being set, stops the
    flowgraph and raises KeyboardInterrupt."""
    tb = gr.top_block()
    tb.source = source
    tb.sink = blocks.vector_sink_c(frame_length)
    tb.connect(tb.source, tb.sink)
    _run(tb, stop)
    frames = np.asarray(tb.sink.data(), dtype=np.complex64).reshape(-1, frame_length)
    labels = [pmt.symbol_to_string(t.value) for t in tb.sink.tags()
              if pmt.symbol_to_string(t.key) == LABEL_TAG_KEY]
    return frames, labels


def _run(tb, stop=None, poll_seconds=0.05):
    """tb.run(), but interruptible: GNU Radio's run() answers Ctrl-C by stopping the
    flowgraph and returning as if it had finished; here the flowgraph is stopped and
    KeyboardInterrupt raised, also when `stop` is set."""
    finished = threading.Event()

    def wait():
        tb.wait()
        finished.set()

    if stop is not None and stop.is_set():
        raise KeyboardInterrupt   # before start(), which takes a while for many chains
    tb.start()
    waiter = threading.Thread(target=wait, name="shapft-flowgraph", daemon=True)
    waiter.start()
    try:
        while not finished.wait(poll_seconds):
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
    except BaseException:
        tb.stop()
        waiter.join()
        raise
    waiter.join()


def run_setting(name, snr_db, n_frames, seed, frames_per_chain=FRAMES_PER_CHAIN, channel=None,
                snr_convention="physical", stop=None):
    """Frames (complex64 [n, 128]) of one setting from short flowgraphs of at most
    CHAINS_PER_FLOWGRAPH chains each (the first seeded with `seed`, the others with
    seeds derived from it); the tags are checked against the setting, so a frame can
    never carry the wrong label. `snr_convention`: as for channel_model_source.
    `stop`: as for collect()."""
    if n_frames < 1:
        raise ValueError(f"n_frames: must be >= 1, got {n_frames}")
    per_flowgraph = CHAINS_PER_FLOWGRAPH * frames_per_chain
    parts = []
    for part, first in enumerate(range(0, n_frames, per_flowgraph)):
        n = min(per_flowgraph, n_frames - first)
        part_seed = seed if part == 0 else int(np.random.SeedSequence([seed, part]).generate_state(1)[0] >> 1)
        frames, labels = collect(channel_model_source([name], [snr_db], num_frames=n, seed=part_seed,
                                                      chains_per_setting=max(1, math.ceil(n / frames_per_chain)),
                                                      transient=1024, channel=channel,
                                                      snr_convention=snr_convention),
                                 stop=stop)
        if len(frames) != n or labels != [name] * n:
            raise RuntimeError(f"{name} at {snr_db} dB: expected {n} frames tagged {name}, "
                               f"got {len(frames)} frames and {len(labels)} label tags")
        parts.append(frames)
    return np.concatenate(parts)


def generate_split(counts, seed, split, workers=None, progress=True, channel=None, snr_convention="physical"):
    """A Recording with counts[(class name, snr)] frames per setting, in class then SNR
    order; `snr_convention`: as for channel_model_source (the recording's SNRs are nominal)."""
    split_id = SPLIT_IDS.get(split, 0)
    settings = [(m, s, n) for (m, s), n in sorted(counts.items(), key=lambda kv: (CLASSES.index(kv[0][0]), kv[0][1])) if n > 0]
    jobs = [(m, s, n, _setting_seed(seed, split_id, m, s), FRAMES_PER_CHAIN, channel, snr_convention)
            for m, s, n in settings]
    workers = workers or min(2, os.cpu_count() or 1)
    # studies.jobs: on Ctrl-C the flowgraphs stop and the pool shuts down before KeyboardInterrupt
    results = run_in_workers(run_setting, jobs, workers, progress=progress, desc=split, unit="setting")
    frames = np.concatenate(results)
    labels = np.concatenate([[CLASSES.index(m)] * n for m, _, n in settings])
    snrs = np.concatenate([[s] * n for _, s, n in settings])
    return rec.Recording(frames, labels, snrs)


def preset_counts(preset, seed):
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    return {split: (uniform_counts(n) if n is not None else spread_counts(TINY_TEST_PER_CLASS, seed))
            for split, n in PRESETS[preset].items()}


def generate_preset(preset, out_dir, seed, force=False, workers=None, progress=True, snr_convention="physical"):
    """Write every split of a preset to OUT_DIR/<split>.sigmf-{meta,data}; returns
    {split: Recording}. Refuses existing output unless force."""
    counts = preset_counts(preset, seed)
    check_snr_convention(snr_convention)   # before any output is touched
    for split in counts:
        if rec.exists(os.path.join(out_dir, split)) and not force:
            raise FileExistsError(f"{os.path.join(out_dir, split)}.sigmf-meta exists; pass --force to overwrite")
    written = {}
    for split, split_counts in counts.items():
        recording = generate_split(split_counts, seed, split, workers=workers, progress=progress,
                                   snr_convention=snr_convention)
        recording.info = {"generator": {"preset": preset, "split": split, "seed": seed,
                                        "snr_convention": snr_convention, "frames_per_chain": FRAMES_PER_CHAIN,
                                        "chains_per_flowgraph": CHAINS_PER_FLOWGRAPH, "transient": 1024,
                                        "window": 2 * FRAME_LENGTH, "channel": DEFAULT_CHANNEL}}
        rec.write(os.path.join(out_dir, split), recording, DESCRIPTIONS[split], overwrite=force)
        written[split] = recording
    return written


def generate_custom(out_dir, name, frames, modulations, snrs_db, seed, force=False, workers=None, progress=True,
                    snr_convention="physical"):
    """Write one recording OUT_DIR/<name> with `frames` frames per setting of the given
    modulations and SNRs; returns {name: Recording}."""
    if frames is None or frames < 1:
        raise ValueError(f"--frames must be >= 1 for --preset custom, got {frames}")
    validate_settings(modulations, snrs_db, frames, FRAME_LENGTH, 2 * FRAME_LENGTH, 1, snr_convention)
    for snr in snrs_db:
        if not math.isfinite(snr):    # a setting's seed derives from its SNR in tenths of a dB
            raise ValueError(f"snrs_db: a dataset needs finite SNRs in dB, got {snr}")
    base = os.path.join(out_dir, name)
    if rec.exists(base) and not force:
        raise FileExistsError(f"{base}.sigmf-meta exists; pass --force to overwrite")
    counts = {(m, s): frames for m in modulations for s in snrs_db}
    data = generate_split(counts, seed, name, workers=workers, progress=progress, snr_convention=snr_convention)
    data.info = {"generator": {"preset": "custom", "seed": seed, "snr_convention": snr_convention,
                               "frames": frames, "modulations": list(modulations), "snrs_db": list(snrs_db)}}
    rec.write(base, data, f"custom: {frames} frames per class and SNR", overwrite=force)
    return {name: data}


def example_frames(snr_db, seed):
    """One frame per class from the channel-model source at `snr_db`: ({name: frame}, title)."""
    frames, labels = collect(channel_model_source(CLASSES, [snr_db], num_frames=len(CLASSES), seed=seed))
    return {name: frames[labels.index(name)] for name in CLASSES}, f"channel-model source, SNR {snr_db:g} dB"


def recording_examples(path):
    """The highest-SNR frame of each class in a recording: ({name: frame}, title)."""
    data = rec.read(path)
    chosen = {}
    for index, name in enumerate(CLASSES):
        members = np.flatnonzero(data.labels == index)
        if len(members):
            chosen[name] = data.frames[members[np.argmax(data.snr_db[members])]]
    return chosen, str(path)
