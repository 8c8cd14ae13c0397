"""How torch work uses the CPU's cores from threads other than a program's main one:
the model-running blocks' (and their benchmarks' references') one way of doing it."""
import concurrent.futures
import threading

import torch


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
    per batch; batches on separate threads never wait for one another (BENCHMARKS.md:
    the classifier sink at 2 threads). torch releases the GIL while it computes.
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
