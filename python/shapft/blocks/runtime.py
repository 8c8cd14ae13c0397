"""What the model-running blocks (fgsm_injector, classifier_sink, attack_detector) run
on, free of GNU Radio but for WorkerBlock's message check: loading the model with
checked settings, torch work on worker threads that each use one core, and the chunk
queue that keeps those workers busy while frames come back to GNU Radio in order."""
import collections
import concurrent.futures
import dataclasses
import threading

import numpy as np
import torch

from ..core import model_file, params
from ..core.recording import frame_validity  # the one rule for invalid frames, shared with the commands
from ..models import device as model_device


def load_model(model_path, batch_size, num_threads, load=model_file.load):
    """The block's model, a model_file.LoadedModel: load(model_path), by default a
    TorchScript model file (classifier_sink passes core.onnx_file.load for an ONNX
    one); bad settings are refused naming the parameter.

    Loaded (and shape-checked, which runs the model) in a short-lived thread, not on the
    flowgraph's main thread: libgomp, torch's OpenMP runtime, keeps a team of worker
    threads for every thread that has run parallel torch code. A team kept by the main
    thread would live as long as the flowgraph; with more OpenMP threads than cores
    libgomp stops spin-waiting in all of them, and every parallel operation of any
    other torch code in the process ends in a futex sleep and wake-up. A short-lived
    thread's team ends with it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if num_threads < 0:
        raise ValueError(f"num_threads: must be >= 0 (0 = torch's default), got {num_threads}")
    return load_file(load, model_path, "model_path")


def block_device(device):
    """The torch.device a block's `device` parameter names (models.device: auto, cpu,
    cuda, cuda:N, mps); one this machine lacks is refused naming the parameter."""
    return model_device.resolve(params.text(device, "device"), "device")


def load_file(load, path, parameter):
    """load(path) run in a short-lived thread (load_model says why); its problems are
    refused naming `parameter`."""
    try:
        # Leaving the with block joins the worker thread, and its team ends with it.
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shapft-load") as loader:
            return loader.submit(load, path).result()
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"{parameter}: {err}") from None


def check_vector_length(vector_length, frame_length, model_path):
    """Refuse a stated vector length (0 = take the model's) the model cannot classify."""
    if vector_length and vector_length != frame_length:
        raise ValueError(f"vector_length: {vector_length} does not match the frame length "
                         f"{frame_length} of {model_path}")


def set_thread_torch_threads(count):
    """Make torch use `count` intra-op threads in the calling thread, whatever other
    threads set. torch.set_num_threads sets the calling thread's OpenMP thread count
    and a process-wide default; a thread's first parallel operation (or first
    get_num_threads) resets its own count to that default, so a count set before it
    is lost when another thread set a different one in between. Initialising first
    makes the count stick."""
    torch.get_num_threads()
    torch.set_num_threads(count)


class BatchWorkers:
    """`count` worker threads that run torch on one thread each; submit() hands them
    batches, to run side by side.

    This uses several cores by running whole batches at once rather than splitting
    each operation across torch's OpenMP threads: a parallel operation ends at a
    barrier where its threads wait for the slowest, so when another thread of the
    flowgraph takes a core from one of them, the others wait too, hundreds of times
    per batch; batches on separate threads never wait for one another. torch releases
    the GIL while it computes.
    `prepare` runs once in each worker before any batch (a model's warm-up).
    """

    def __init__(self, count, prepare):
        if count < 1:
            raise ValueError(f"count: must be >= 1, got {count}")
        self.count = count
        self._pool = concurrent.futures.ThreadPoolExecutor(count, thread_name_prefix="shapft-torch")
        started = threading.Barrier(count)

        def start_worker():
            started.wait()   # holds each start until all `count` run: one per worker thread
            set_thread_torch_threads(1)
            prepare()

        for started_worker in [self.submit(start_worker) for _ in range(count)]:
            started_worker.result()

    def submit(self, function, *args):
        """A Future of function(*args), computed by the next free worker."""
        return self._pool.submit(function, *args)

    def close(self):
        """Stop the workers; what is queued and not started is dropped."""
        self._pool.shutdown(cancel_futures=True)


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
        """Whether every batch has finished (or failed)."""
        return all(batch.done() for batch in self.batches)

    def failed(self):
        """Whether a batch raised (of a done chunk)."""
        return any(batch.exception() is not None for batch in self.batches)

    def split(self, count):
        """(its first `count` frames, the rest): two chunks of a chunk that is done."""
        head = Chunk(self.end - len(self.valid) + count, self.valid[:count],
                     {i: reason for i, reason in self.reasons.items() if i < count},
                     {name: values[:count] for name, values in self.results.items()}, [])
        rest = Chunk(self.end, self.valid[count:],
                     {i - count: reason for i, reason in self.reasons.items() if i >= count},
                     {name: values[count:] for name, values in self.results.items()}, [])
        return head, rest

    def wait(self):
        """The chunk once all its batches are done; raises what a batch raised."""
        # One wake-up when the last batch is done, not one per batch.
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
        """Per-frame results `name` of the released frames, in order."""
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

    def release(self, start, room):
        """The oldest chunk, waited for, and the ones after it done by then, as far as
        they end within `room` items of the window's start; the workers go on with the
        rest meanwhile. The output window can be smaller than the one the chunks were
        queued from (when the block downstream is slow): of an oldest chunk longer than
        `room`, its first `room` frames are released and the rest stays queued, oldest.
        Raises what a batch of the oldest chunk raised; a later failed chunk stays
        queued, the oldest for the next release."""
        chunks = [self._chunks.popleft().wait()]
        if chunks[0].end - start > room:
            chunks[0], rest = chunks[0].split(room)   # the oldest chunk starts at `start`
            self._chunks.appendleft(rest)
        while (self._chunks and self._chunks[0].end - start <= room and self._chunks[0].done()
               and not self._chunks[0].failed()):
            chunks.append(self._chunks.popleft())
        n = chunks[-1].end - start
        reasons = {chunk.end - start - len(chunk.valid) + i: reason
                   for chunk in chunks for i, reason in chunk.reasons.items()}
        return Released(n, np.concatenate([chunk.valid for chunk in chunks]), reasons, chunks)

    def close(self):
        """Stop the workers and forget the queued chunks (their frames are never released)."""
        self.workers.close()
        self._chunks.clear()


class WorkerBlock:
    """Mixed into the model-running blocks: their workers (self.chunks, a ChunkQueue)
    and what start(), work() and stop() share when something fails. An error is
    recorded in self.error_log (blocks.guard.ErrorLog) and leaves the block failed
    (self.failed), its workers stopped; nothing is raised into GNU Radio."""

    def _start_publishing(self, port, warm_up, batches_per_chunk):
        """start() of a block with a message `port`: messages are built only while
        something is connected to it (they cost more than a fast model's inference),
        then the workers start."""
        import pmt
        try:
            self.publishing = self.publish and pmt.length(self.message_subscribers(port)) > 0
        except Exception as err:
            self._fail("start", err)
            return True
        self._start_workers(warm_up, batches_per_chunk)
        return True

    def _start_workers(self, warm_up, batches_per_chunk):
        try:
            self.chunks = ChunkQueue(self.num_threads, warm_up, self.batch_size, batches_per_chunk)
        except Exception as err:
            self._fail("start", err)

    def _stop_workers(self):
        try:
            self._close_chunks()
        except Exception as err:
            self.error_log.record("stop", err)

    def _fail(self, where, err):
        """Report the error; the workers stop and the frames they held are dropped."""
        self.error_log.record(where, err)
        self.failed = True
        try:
            self._close_chunks()
        except Exception as close_err:
            self.error_log.record(where, close_err)

    def _close_chunks(self):
        """Stop the workers, once."""
        chunks, self.chunks = self.chunks, None
        if chunks:
            chunks.close()
