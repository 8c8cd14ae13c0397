"""Independent jobs in worker processes that Ctrl-C stops cleanly.

A terminal's Ctrl-C sends SIGINT to the whole process group. Workers ignore it; the
parent notes it (a KeyboardInterrupt raised at whatever line runs, possibly inside
concurrent.futures, would leave the pool unable to shut down), asks the running jobs
to stop through an Event, drops the jobs not started and shuts the pool down before
raising KeyboardInterrupt, so no worker outlives the call.
"""
import concurrent.futures
import contextlib
import multiprocessing
import signal

from tqdm import tqdm

from ..core import artifacts

# In a worker process: the parent's request to stop (a multiprocessing Event).
_stop = None


def run(function, jobs, workers, context=None, initializer=None, initargs=(), progress=False, desc=None,
        unit="job"):
    """function(*job, stop=event) of every job, in `workers` processes of the
    multiprocessing `context` (default: the platform's), each prepared by
    initializer(*initargs); the results in job order. A job polls `stop` and, once it
    is set, stops with KeyboardInterrupt.

    On Ctrl-C, or when a job fails, the running jobs are asked to stop, jobs not started
    are dropped, and the pool is shut down before KeyboardInterrupt (or the job's error)
    is raised."""
    context = context or multiprocessing.get_context()
    stop = context.Event()
    with artifacts.sigint_deferred() as interrupted:
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                      initargs=(stop, initializer, initargs))
        bar = None
        try:
            with _sigint_blocked():
                # The worker processes start in submit() and inherit the blocked SIGINT.
                futures = [pool.submit(_job, function, job) for job in jobs]
            bar = tqdm(total=len(jobs), desc=desc, unit=unit, disable=not progress, leave=False)
            pending = set(futures)
            while pending and not interrupted.is_set():
                done, pending = concurrent.futures.wait(pending, timeout=0.1,
                                                        return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    future.result()   # a failed job fails the run now
                if done:   # (tqdm redraws on every update, even of 0)
                    bar.update(len(done))
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()
    return [future.result() for future in futures]


def _start_worker(stop, initializer, initargs):
    """Initialise a worker process: Ctrl-C is the parent's to handle, so workers ignore
    it; the parent asks them to stop through `stop`. Workers start with SIGINT blocked
    (_sigint_blocked), so none arrives before it is ignored."""
    global _stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _stop = stop
    if initializer is not None:
        initializer(*initargs)


def _job(function, args):
    if _stop.is_set():   # queued to this worker before the parent asked to stop
        raise KeyboardInterrupt
    return function(*args, stop=_stop)


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT held back from the calling thread (and the processes and threads it starts)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
