"""tally: the classifier sink's running statistics, batch by batch, against a plain
frame-by-frame count."""
import math

import numpy as np

from gnuradio.shapft.blocks.tally import RECENT_FRAMES, Tally

CLASSES = [f"c{i}" for i in range(5)]


def frame_by_frame(predicted, true, snr_db):
    """(correct, labelled, confusion, {snr: [correct, labelled]}, hits) counted one frame
    at a time."""
    confusion = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    by_snr, hits = {}, []
    for p, t, s in zip(predicted, true, snr_db):
        if t < 0:
            continue
        confusion[t, p] += 1
        hits.append(p == t)
        if not math.isnan(s):
            entry = by_snr.setdefault(float(s), [0, 0])
            entry[0] += int(p == t)
            entry[1] += 1
    return sum(hits), len(hits), confusion, by_snr, hits


def random_batches(rng, sizes):
    for size in sizes:
        predicted = rng.integers(0, len(CLASSES), size)
        true = np.where(rng.random(size) < 0.2, -1, rng.integers(0, len(CLASSES), size))
        snr = np.where(rng.random(size) < 0.1, np.nan, rng.choice([-10.0, 0.0, 4.0, 18.0], size))
        yield predicted, true, snr


def test_batches_count_as_frames_one_by_one():
    rng = np.random.default_rng(0)
    tally = Tally(CLASSES)
    batches = list(random_batches(rng, [1, 37, 2048, 600, 3]))
    for batch in batches:
        tally.add(*batch)
    correct, labelled, confusion, by_snr, _ = frame_by_frame(*map(np.concatenate, zip(*batches)))
    assert tally.frames_scored == sum(len(b[0]) for b in batches)
    assert (tally.correct, tally.frames_labelled) == (correct, labelled)
    assert np.array_equal(tally.confusion, confusion)
    assert tally.by_snr == by_snr
    assert tally.accuracy() == correct / labelled


def test_recent_accuracy_is_over_the_latest_labelled_frames():
    rng = np.random.default_rng(1)
    tally = Tally(CLASSES)
    # Batches both smaller and larger than the recent window, the last one largest.
    batches = list(random_batches(rng, [RECENT_FRAMES // 3, 2 * RECENT_FRAMES, 7, 3 * RECENT_FRAMES]))
    hits = []
    for batch in batches:
        tally.add(*batch)
        hits += frame_by_frame(*batch)[4]
        assert tally.recent_accuracy() == np.mean(hits[-RECENT_FRAMES:])


def test_unlabelled_frames_are_scored_only():
    tally = Tally(CLASSES)
    tally.add(np.array([0, 1, 2]))
    tally.add(np.array([3, 4]), np.array([-1, -1]), np.array([np.nan, 5.0]))
    assert tally.frames_scored == 5 and tally.frames_labelled == 0
    assert math.isnan(tally.accuracy()) and math.isnan(tally.recent_accuracy())
    assert tally.by_snr == {} and not tally.confusion.any()


def test_dropped_frames_counted_apart_in_the_report():
    tally = Tally(CLASSES)
    tally.frames_in = 10
    tally.add(np.array([0, 1]), np.array([0, 0]), np.array([4.0, 4.0]))
    tally.add_invalid("zero")
    tally.frames_dropped += 7
    report = tally.as_dict()
    assert (report["frames_in"], report["frames_scored"], report["frames_dropped"]) == (10, 2, 7)
    assert report["frames_invalid"] == {"nan": 0, "inf": 0, "zero": 1}
    assert tally.summary().startswith("10 frames in, 2 scored, 1 invalid, 7 dropped, accuracy 50.0%")
