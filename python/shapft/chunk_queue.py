"""How the model-running blocks keep their workers busy: a block's frames go to the
workers in chunks as they arrive and come back to GNU Radio in order once computed,
so the workers never wait for the block's own thread (nor it for them, while a chunk
is done). Free of GNU Radio: the blocks say where a window starts."""
import collections
import concurrent.futures
import dataclasses

import numpy as np

from .torch_threads import BatchWorkers


def frame_validity(frames):
    """(valid: bool per frame; {index: 'nan', 'inf' or 'zero'} for the others).

    One pass computes each frame's energy: NaN or Inf when a sample is, 0 when all
    are 0. Overflow (|x| > 1e19) or underflow (|x| < 1e-23) can flag a good frame
    there, so flagged frames get the exact test, which also names the reason."""
    samples = np.ascontiguousarray(frames, dtype=np.complex64).view(np.float32)
    energy = np.einsum("ij,ij->i", samples, samples)
    valid = np.isfinite(energy) & (energy > 0)
    reasons = {}
    for i in np.flatnonzero(~valid):
        frame = frames[i]
        if np.isnan(frame).any():
            reasons[int(i)] = "nan"
        elif np.isinf(frame).any():
            reasons[int(i)] = "inf"
        elif not frame.any():
            reasons[int(i)] = "zero"
        else:
            valid[i] = True
    return valid, reasons


def batches(valid, batch_size, parts=1):
    """Index of each batch of valid frames: the fewest batches of at most batch_size
    whose number is a multiple of `parts` (workers that take them side by side finish
    together), sizes within one frame of each other. Slices while all frames are valid
    (views, no copies), else index arrays."""
    count = int(np.count_nonzero(valid))
    if count == 0:
        return []
    number = -(-count // batch_size)
    number = min(count, -(-number // parts) * parts)
    bounds = ((np.arange(number + 1) * count) // number).tolist()
    if count == len(valid):
        return [slice(start, end) for start, end in zip(bounds[:-1], bounds[1:])]
    index = np.flatnonzero(valid)
    return [index[start:end] for start, end in zip(bounds[:-1], bounds[1:])]


@dataclasses.dataclass
class Chunk:
    """Frames handed to the workers together and not yet released."""
    end: int          # item offset after its last frame
    valid: np.ndarray
    reasons: dict     # index in the chunk: why the frame is not valid
    results: dict     # name: per-frame array the batches fill in
    batches: list     # futures of its batches

    def done(self):
        return all(batch.done() for batch in self.batches)

    def wait(self):
        # One wake-up when the last batch is done: waiting for each batch in turn woke
        # this thread once per batch, ~0.3 ms of its CPU time per chunk.
        concurrent.futures.wait(self.batches)
        for batch in self.batches:
            batch.result()   # raises what the batch raised
        return self


@dataclasses.dataclass
class Released:
    """The chunks a work() call hands back to GNU Radio: its window's first n frames."""
    n: int
    valid: np.ndarray
    reasons: dict     # index in the window: why the frame is not valid
    chunks: list

    def results(self, name):
        return np.concatenate([chunk.results[name] for chunk in self.chunks])


class ChunkQueue:
    """A block's frames between its input and its `worker_count` workers (BatchWorkers,
    each prepared by `prepare_worker`: the model's warm-up), oldest first.

    Chunks hold `chunk_batches` full batches per worker. A window's frames beyond the
    last whole chunk wait for the next window while other chunks keep the workers
    busy: a short chunk would run short batches, and TorchScript runs batch shapes
    other than the warm-up's on a slower, unspecialised graph."""

    def __init__(self, worker_count, prepare_worker, batch_size, chunk_batches):
        self.workers = BatchWorkers(worker_count, prepare_worker)
        self.batch_size = batch_size
        self.chunk_frames = chunk_batches * batch_size * worker_count
        self._chunks = collections.deque()

    def queue(self, frames, start, prepare):
        """Queue the frames of the window starting at item `start` that are not queued
        yet. prepare(frames, first) -> (results, compute) sets up a chunk
        (`first`: its index in the window): `results` the per-frame arrays, by name,
        that compute(index) fills in for a batch of valid frames on a worker; compute
        None when the chunk needs no work. The frames are the block's input buffer,
        which GNU Radio may reuse once released: prepare copies what compute reads."""
        first = (self._chunks[-1].end if self._chunks else start) - start
        while len(frames) - first >= self.chunk_frames or (first < len(frames) and not self._chunks):
            chunk_frames = frames[first:first + self.chunk_frames]
            valid, reasons = frame_validity(chunk_frames)
            results, compute = prepare(chunk_frames, first)
            work = [] if compute is None else batches(valid, self.batch_size, self.workers.count)
            first += len(chunk_frames)
            self._chunks.append(Chunk(start + first, valid, reasons, results,
                                      [self.workers.submit(compute, index) for index in work]))

    def release(self, start):
        """The oldest chunk, waited for, and the ones after it done by then; the workers
        go on with the rest meanwhile."""
        chunks = [self._chunks.popleft().wait()]
        while self._chunks and self._chunks[0].done():
            chunks.append(self._chunks.popleft())
        n = chunks[-1].end - start
        reasons = {chunk.end - start - len(chunk.valid) + i: reason
                   for chunk in chunks for i, reason in chunk.reasons.items()}
        return Released(n, np.concatenate([chunk.valid for chunk in chunks]), reasons, chunks)

    def close(self):
        """Stop the workers and forget the queued chunks (their frames are never released)."""
        self.workers.close()
        self._chunks.clear()
