"""chunk_queue: chunks of whole batches, released in order, short chunks only when
nothing else is queued, a batch's error raised at release."""
import threading
import time

import numpy as np
import pytest

from gnuradio.shapft.blocks.runtime import ChunkQueue, batches
from gnuradio.shapft.core.recording import frame_validity


@pytest.fixture
def make_queue():
    """ChunkQueue(batch_size, chunk_batches) on 2 workers, closed after the test."""
    queues = []

    def make(batch_size, chunk_batches):
        queues.append(ChunkQueue(2, lambda: None, batch_size, chunk_batches))
        return queues[-1]
    yield make
    for queue in queues:
        queue.close()


def frames(n, start=0):
    """Frames whose first sample is their item number + 1 (so none is all zero)."""
    out = np.zeros((n, 4), np.complex64)
    out[:, 0] = np.arange(start, start + n) + 1
    return out


def release_all(queue, start, n):
    """Release until the n frames from item `start` are, as successive work() calls
    would: (frames released, chunks' ends, reasons by index from `start`, results 'x')."""
    released, done, reasons = [], 0, {}
    while done < n:
        released.append(queue.release(start + done, n - done))
        reasons.update({done + i: reason for i, reason in released[-1].reasons.items()})
        done += released[-1].n
    ends = [chunk.end for r in released for chunk in r.chunks]
    return done, ends, reasons, np.concatenate([r.results("x") for r in released])


def doubling(frames, first):
    results = {"x": np.zeros(len(frames))}
    copy = frames[:, 0].real.copy()

    def compute(index):
        results["x"][index] = 2 * copy[index]
    return results, compute


def test_whole_chunks_queued_the_rest_waits(make_queue):
    queue = make_queue(batch_size=3, chunk_batches=2)   # chunks of 12 frames
    window = frames(30)
    queue.queue(window, 0, doubling)
    n, ends, _, x = release_all(queue, 0, 24)
    assert (n, ends) == (24, [12, 24])
    np.testing.assert_array_equal(x, 2 * (np.arange(24) + 1))
    # The 6 frames after the last whole chunk were not queued while others were; now
    # nothing is queued, so they go as a short chunk.
    rest = window[24:]
    queue.queue(rest, 24, doubling)
    last = queue.release(24, 6)
    assert last.n == 6
    np.testing.assert_array_equal(last.results("x"), 2 * (np.arange(24, 30) + 1))


def test_release_in_order_while_later_chunks_finish_first(make_queue):
    queue = make_queue(batch_size=1, chunk_batches=1)   # chunks of 2 frames
    gate = threading.Event()

    def first_batch_held(frames, first):
        results, compute = doubling(frames, first)

        def held(index):
            if first == 0 and index.start == 0:
                gate.wait(5)   # one worker held; the other computes every later chunk
            compute(index)
        return results, held

    queue.queue(frames(8), 0, first_batch_held)
    threading.Timer(0.5, gate.set).start()
    released = queue.release(0, 8)       # waits for the oldest, takes the rest as done
    assert [chunk.end for chunk in released.chunks] == [2, 4, 6, 8]
    np.testing.assert_array_equal(released.results("x"), 2 * (np.arange(8) + 1))


def test_invalid_frames_reported_by_window_index_and_not_computed(make_queue):
    queue = make_queue(batch_size=2, chunk_batches=1)   # chunks of 4 frames
    window = frames(8)
    window[[3, 4]] = 0
    window[6, 1] = np.nan
    queue.queue(window, 100, doubling)
    n, ends, reasons, x = release_all(queue, 100, 8)
    assert (n, ends) == (8, [104, 108])
    assert reasons == {3: "zero", 4: "zero", 6: "nan"}
    assert x[3] == x[4] == x[6] == 0
    np.testing.assert_array_equal(x[[0, 1, 2, 5, 7]], 2 * np.array([1, 2, 3, 6, 8]))


def test_a_batch_error_is_raised_at_release(make_queue):
    queue = make_queue(batch_size=2, chunk_batches=1)

    def failing(frames, first):
        def compute(index):
            raise RuntimeError("model failed")
        return {}, compute

    queue.queue(frames(4), 0, failing)
    with pytest.raises(RuntimeError, match="model failed"):
        queue.release(0, 4)


def test_a_later_chunk_that_failed_first_is_raised_at_its_release(make_queue):
    # The oldest chunk is held while a later one fails: the release of the oldest
    # must not hand back the failed chunk's unfilled results as if computed; the
    # next release raises its error.
    queue = make_queue(batch_size=1, chunk_batches=1)   # chunks of 2 frames
    failed = threading.Event()

    def later_chunk_fails(frames, first):
        results, compute = doubling(frames, first)

        def run(index):
            if first == 0 and index.start == 0:
                failed.wait(5)
                time.sleep(0.2)   # the failed chunk's other batch ends too
            if first == 2:
                failed.set()
                raise RuntimeError("model failed")
            compute(index)
        return results, run

    queue.queue(frames(4), 0, later_chunk_fails)
    released = queue.release(0, 4)
    assert [chunk.end for chunk in released.chunks] == [2]
    np.testing.assert_array_equal(released.results("x"), [2, 4])
    with pytest.raises(RuntimeError, match="model failed"):
        queue.release(2, 2)


def test_chunks_without_work_pass_as_they_are(make_queue):
    queue = make_queue(batch_size=2, chunk_batches=1)
    queue.queue(frames(3), 0, lambda f, first: ({"x": f[:, 0].real.copy()}, None))
    released = queue.release(0, 3)
    np.testing.assert_array_equal(released.results("x"), [1, 2, 3])


def test_windows_smaller_than_the_queued_chunks_get_what_fits(make_queue):
    # Chunks queued from a window of 24; then GNU Radio offers output windows of 5 (the
    # block downstream is slow): each release fits its window, a chunk longer than it
    # is split, and every frame comes out once, in order, with its reason.
    queue = make_queue(batch_size=3, chunk_batches=2)   # chunks of 12 frames
    window = frames(24)
    window[[4, 13]] = 0
    queue.queue(window, 0, doubling)
    start, sizes, reasons, x = 0, [], {}, []
    while start < 24:
        released = queue.release(start, 5)
        sizes.append(released.n)
        reasons.update({start + i: reason for i, reason in released.reasons.items()})
        assert len(released.valid) == released.n
        x.append(released.results("x"))
        start += released.n
    assert sizes == [5, 5, 2, 5, 5, 2]
    assert reasons == {4: "zero", 13: "zero"}
    expected = 2 * (np.arange(24) + 1.0)
    expected[[4, 13]] = 0
    np.testing.assert_array_equal(np.concatenate(x), expected)


def test_batches_split_evenly_over_workers():
    valid = np.ones(10, bool)
    assert [(s.start, s.stop) for s in batches(valid, 4, parts=2)] == [(0, 2), (2, 5), (5, 7), (7, 10)]
    valid[[1, 8]] = False
    split = batches(valid, 4, parts=2)
    assert [list(index) for index in split] == [[0, 2, 3, 4], [5, 6, 7, 9]]
    assert batches(np.zeros(3, bool), 4) == []


def test_frame_validity_names_the_reason():
    window = frames(5)
    window[1, 2] = np.inf
    window[3] = 0
    window[4] = 1e-30            # tiny but not zero: valid, though its energy underflows
    valid, reasons = frame_validity(window)
    assert valid.tolist() == [True, False, True, False, True]
    assert reasons == {1: "inf", 3: "zero"}
