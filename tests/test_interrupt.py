"""Ctrl-C during `shapft generate`: the terminal sends SIGINT to the whole process
group (the command and its worker processes); the command must exit promptly with
`interrupted` (code 130), no traceback, no worker left behind and no output files."""
import os
import random
import signal
import subprocess
import sys
import threading
import time

import gnuradio.shapft

# The copy of the package these tests import, for the command's own interpreter.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(gnuradio.shapft.__file__))))


def start_generate(out):
    """`shapft generate` in its own process group: 220 short settings, several seconds in
    all, so a SIGINT finds workers running flowgraphs, starting them or between two.
    stderr is collected by a thread. Returns (process, stderr chunks, an event set
    once the progress bar shows, i.e. the worker pool runs, the reading thread)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen(
        [sys.executable, "-m", "gnuradio.shapft.cli", "generate", "--preset", "custom", "--frames", "4",
         "--snrs=-20:18:2", "--out", str(out), "--seed", "3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    chunks, generating = [], threading.Event()

    def read():
        for chunk in iter(lambda: os.read(process.stderr.fileno(), 4096), b""):
            chunks.append(chunk)
            if b"custom:" in b"".join(chunks):    # the progress bar's description
                generating.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return process, chunks, generating, reader


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_exits_promptly_and_cleanly(tmp_path):
    rng = random.Random(2026)
    # Right as the pool starts, and at random moments while its flowgraphs run.
    delays = [0.0] + [rng.uniform(0.1, 2.0) for _ in range(7)]
    for trial, delay in enumerate(delays):
        out = tmp_path / str(trial)
        process, chunks, generating, reader = start_generate(out)
        stray = True
        try:
            assert generating.wait(30), b"".join(chunks).decode(errors="replace")
            time.sleep(delay)
            os.killpg(process.pid, signal.SIGINT)
            interrupted_at = time.monotonic()
            code = process.wait(timeout=10)
            exit_seconds = time.monotonic() - interrupted_at
            stray = group_alive(process.pid)
        finally:
            if process.poll() is None or stray:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        reader.join(5)
        process.stderr.close()
        err = b"".join(chunks).decode(errors="replace")
        where = f"trial {trial} (SIGINT {delay:.2f} s into generation, exit after {exit_seconds:.2f} s)"
        assert code == 130, f"{where}: code {code}\n{err}"
        assert err.rstrip().endswith("shapft generate: interrupted"), f"{where}\n{err}"
        assert "Traceback" not in err and "Error" not in err, f"{where}\n{err}"
        assert not stray, f"{where}: a worker process outlived the command"
        assert sorted(os.listdir(out)) == [], where
