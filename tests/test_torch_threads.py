"""blocks.runtime: a thread's torch thread count sticks; BatchWorkers run batches on
single-thread workers, each prepared once."""
import threading

import pytest
import torch

from gnuradio.shapft.blocks.runtime import BatchWorkers, set_thread_torch_threads


def test_thread_count_survives_another_thread_setting_its_own():
    # Thread `ours` sets 1, then `other` sets 2 before `ours` runs any torch code:
    # with torch.set_num_threads alone, `ours` would run with 2.
    ours_set, other_set = threading.Event(), threading.Event()
    seen = {}

    def ours():
        set_thread_torch_threads(1)
        ours_set.set()
        other_set.wait()
        seen["ours"] = torch.get_num_threads()

    def other():
        ours_set.wait()
        set_thread_torch_threads(2)
        other_set.set()
        seen["other"] = torch.get_num_threads()

    threads = [threading.Thread(target=ours), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"ours": 1, "other": 2}


def test_workers_prepared_once_each_on_one_torch_thread():
    prepared = []
    lock = threading.Lock()

    def prepare():
        with lock:
            prepared.append((threading.get_ident(), torch.get_num_threads()))

    workers = BatchWorkers(2, prepare)
    try:
        assert len(prepared) == 2 and len({ident for ident, _ in prepared}) == 2
        assert all(count == 1 for _, count in prepared)
        x = torch.arange(64.0).reshape(8, 8)
        futures = [workers.submit(torch.mm, x[i:i + 2], x) for i in range(0, 8, 2)]
        assert torch.equal(torch.cat([future.result() for future in futures]), x @ x)
        ran_on = {workers.submit(lambda: (threading.get_ident(), torch.get_num_threads())).result()
                  for _ in range(8)}
        assert ran_on <= set(prepared)
    finally:
        workers.close()


def test_workers_refuse_no_threads():
    with pytest.raises(ValueError, match="count"):
        BatchWorkers(0, lambda: None)
