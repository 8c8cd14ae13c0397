"""Ctrl-C during `shapft generate` and during the fine-tuning of `shapft reproduce`: the
terminal sends SIGINT to the whole process group (the command and its worker
processes); the command must exit promptly with `interrupted` (code 130), no
traceback, no worker left behind and no partial output files."""
import glob
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import torch

import gnuradio.shapft
import shapft_testing
from gnuradio.shapft import models
from gnuradio.shapft.core import masks, model_file, recording
from gnuradio.shapft.studies import reproduce

# The copy of the package these tests import, for the command's own interpreter.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(gnuradio.shapft.__file__))))


def start_generate(out):
    """`shapft generate` in its own process group: 220 short settings, several seconds in
    all, so a SIGINT finds workers running flowgraphs, starting them or between two.
    stderr is collected by a thread. Returns (process, stderr chunks, an event set
    once the progress bar shows, i.e. the worker pool runs, the reading thread)."""
    env = package_env()
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


def package_env(**extra):
    """The environment of a `shapft` subprocess that imports the package under test."""
    return dict(os.environ, **extra,
                PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))


def interrupt_group(process, timeout, still_running):
    """SIGINT to `process`'s group; returns (exit code, or a text saying it did not exit
    within `timeout` s; seconds from SIGINT to exit; still_running(pgid))."""
    os.killpg(process.pid, signal.SIGINT)
    interrupted_at = time.monotonic()
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = f"none: still running {timeout} s after SIGINT"
    return code, time.monotonic() - interrupted_at, still_running(process.pid)


def kill_group_if(process, stray):
    """Kill `process`'s group if the process still runs or `stray` says its group does."""
    if process.poll() is None or stray:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


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
            code, exit_seconds, stray = interrupt_group(process, 10, group_alive)
        finally:
            kill_group_if(process, stray)
        reader.join(5)
        process.stderr.close()
        err = b"".join(chunks).decode(errors="replace")
        where = f"trial {trial} (SIGINT {delay:.2f} s into generation, exit after {exit_seconds:.2f} s)"
        assert code == 130, f"{where}: code {code}\n{err}"
        assert err.rstrip().endswith("shapft generate: interrupted"), f"{where}\n{err}"
        assert "Traceback" not in err and "Error" not in err, f"{where}\n{err}"
        assert not stray, f"{where}: a worker process outlived the command"
        assert sorted(os.listdir(out)) == [], where


def group_running(pgid, wait_seconds=2.0):
    """Whether processes of group `pgid` still run after up to `wait_seconds`; exited ones
    not yet reaped (spawn's resource tracker, reparented when the command exits) are not."""
    deadline = time.monotonic() + wait_seconds
    while True:
        running = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                with open(stat) as f:
                    state, _, group = f.read().rpartition(")")[2].split()[:3]
            except OSError:   # exited meanwhile
                continue
            if int(group) == pgid and state != "Z":
                running.append(stat)
        if not running or time.monotonic() > deadline:
            return bool(running)
        time.sleep(0.05)


def micro_run_before_finetune(out):
    """A `reproduce --preset micro` run directory whose stages up to the masks are done:
    an untrained CNN-LSTM of the paper's size, 66 tiny-train frames and a mask of 3
    positions per eps, so that its 7 fine-tuning runs take a few seconds in all."""
    pipeline = reproduce.Pipeline(out, reproduce.PRESETS["micro"])
    torch.manual_seed(0)
    model_file.export(models.CnnLstm().eval(), pipeline.original, "cnn_lstm", 128, {"command": "a test"})
    recording.write(pipeline.tiny / "tiny-train", shapft_testing.tone_recording(3, [0.0, 10.0], seed=1),
                    "tiny-train")
    sha = model_file.load(pipeline.original).sha256
    for i, eps in enumerate(pipeline.preset.eps_levels):
        masks.save(pipeline.mask(eps), masks.make_mask([5 + i, 60, 100], 128, "fgsm", eps, sha))
    done = {stage: {"seconds": 0} for stage in reproduce.STAGES[:reproduce.STAGES.index("finetune")]}
    (out / "stages.json").write_text(json.dumps(done))
    return pipeline


REPRODUCE = [sys.executable, "-m", "gnuradio.shapft.cli", "reproduce", "--preset", "micro", "--until", "finetune",
             "--quiet"]
WORKERS = 2   # reproduce's default


def interrupted_reproduce(out, ready, delay):
    """Run `reproduce --preset micro --until finetune` on `out` in its own process group
    and send it SIGINT `delay` seconds after ready(its stdout so far) holds. Returns (exit
    code, stderr, seconds from SIGINT to exit, the models written before the SIGINT,
    whether a process of the group ran on); a command still running is killed."""
    env = package_env(PYTHONUNBUFFERED="1")
    process = subprocess.Popen(REPRODUCE + ["--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, start_new_session=True)
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(process.stdout.readline, b"")), daemon=True)
    reader.start()
    stray = True
    try:
        deadline = time.monotonic() + 120
        while not ready(b"".join(chunks).decode()) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, (b"".join(chunks) + process.stderr.read()).decode(errors="replace")
        time.sleep(delay)
        before = set((out / "finetune").rglob("*.pt"))
        code, exit_seconds, stray = interrupt_group(process, 20, group_running)
    finally:
        kill_group_if(process, stray)
    reader.join(5)
    err = process.stderr.read().decode(errors="replace")
    for stream in (process.stdout, process.stderr):
        stream.close()
    return code, err, exit_seconds, before, stray


def test_ctrl_c_during_the_fine_tuning_of_reproduce_exits_promptly_and_resumes(tmp_path):
    out = tmp_path / "run"
    pipeline = micro_run_before_finetune(out)
    models = out / "finetune"
    # A second into the stage, while the worker processes start (and import torch), then
    # once the first model is written: one worker fine-tunes, the other starts its next
    # run, further runs are queued for them.
    for when, ready, delay in (("as the workers start", lambda stdout: "runs to do" in stdout, 1.0),
                               ("while the workers fine-tune", lambda stdout: any(models.rglob("*.pt")), 0.0)):
        code, err, exit_seconds, before, stray = interrupted_reproduce(out, ready, delay)
        where = f"SIGINT {when}: exit after {exit_seconds:.2f} s"
        assert code == 130, f"{where}: code {code}\n{err}"
        assert not stray, f"{where}: a worker process outlived the command"
        assert err.rstrip().endswith("shapft reproduce: interrupted"), f"{where}\n{err}"
        assert "Traceback" not in err and "Error" not in err, f"{where}\n{err}"
        assert exit_seconds < 10, where
        written = [path for path in models.rglob("*") if path.is_file()]
        assert all(path.suffix == ".pt" for path in written), f"{where}: {written}"   # no temporaries
        for path in written:
            model_file.load(path)   # whole models only
        # runs that had not started are dropped; a running one may only finish its export
        finished_after = len(set(written) - before)
        assert finished_after <= WORKERS, f"{where}: {finished_after} runs finished after it"
        assert "finetune" not in json.loads((out / "stages.json").read_text()), where
    assert 1 <= len(written) < 7, written

    env = package_env()
    resumed = subprocess.run(REPRODUCE + ["--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"[finetune] {7 - len(written)} of 7 fine-tuning runs to do" in resumed.stdout, resumed.stdout
    assert "finetune" in json.loads((out / "stages.json").read_text())
    for eps in pipeline.preset.eps_levels:
        for method in ("shapft", "random", "at_fgsm"):
            model_file.load(pipeline.finetuned(method, 0, eps))
    model_file.load(pipeline.finetuned("direct", 0))
