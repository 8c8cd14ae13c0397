"""Several processes training one model (learn.distributed), for real: torch.distributed
with gloo on the CPU. `torchrun --nproc_per_node 2 shapft train` exports one model that
records world_size 2 and resumes a checkpoint, and `shapft finetune` does the same; two
processes running training.fit give the weights one process gives (the gradient of every
whole batch, the same steps); the other commands refuse to run under torchrun."""
import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from gnuradio.shapft import models
from gnuradio.shapft.core import model_file, recording
from gnuradio.shapft.learn import distributed, training
import shapft_testing

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
LAUNCHER = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    for name, seed in (("train", 1), ("val", 2), ("test", 3)):
        recording.write(directory / name, shapft_testing.tone_recording(3, [0, 10], seed=seed), f"tones, {name}")
    return directory


def torchrun(*args, timeout=300):
    """`torchrun --standalone --nproc_per_node 2 shapft ARGS` (this interpreter's package):
    (exit code, stdout, stderr)."""
    environment = {k: v for k, v in os.environ.items() if k not in distributed.ENVIRONMENT}
    result = subprocess.run(LAUNCHER + ["-m", "gnuradio.shapft.cli", *map(str, args)], capture_output=True,
                            text=True, timeout=timeout, env=environment)
    return result.returncode, result.stdout, result.stderr


def train_args(dataset, out, epochs):
    return ["train", "--arch", "transformer_compact", "--data", dataset, "--out", out, "--epochs", epochs,
            "--batch-size", 16, "--seed", 5, "--quiet"]


def test_torchrun_trains_one_model_in_two_processes_resuming_a_checkpoint(dataset, tmp_path):
    # epoch 1 by one process, with the command's own settings; epoch 2 by two processes
    out = tmp_path / "two.pt"
    checkpoint = tmp_path / "two.pt.ckpt"
    split = {name: recording.read(dataset / name) for name in ("train", "val")}
    torch.manual_seed(5)
    first = training.fit(models.build("transformer_compact"), *[(s.model_input(), s.labels) for s in split.values()],
                         training.TrainConfig(epochs=1, batch_size=16, seed=5), checkpoint_path=checkpoint,
                         progress=False)
    code, stdout, stderr = torchrun(*train_args(dataset, out, 2), "--resume")
    assert code == 0, stderr
    assert stderr.count("distributed training: 2 processes (gloo), each on 1/2 of every batch of 16") == 1, stderr
    assert stdout.count(f"wrote {out}") == 1, stdout          # rank 0 alone reports and writes
    loaded = model_file.load(out)
    summary = loaded.metadata["training"]
    assert summary["world_size"] == 2 and summary["device"] == "cpu" and summary["epochs_run"] == 2
    assert 0 <= summary["best_val_acc"] <= 1 and 0 <= summary["test_accuracy"] <= 1
    history = json.loads(out.with_suffix(".training.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0]["val_loss"] == first.history[0]["val_loss"]   # epoch 1 came from the checkpoint
    assert history[1]["val_loss"] != history[0]["val_loss"]         # epoch 2 trained
    assert not checkpoint.exists()


def test_torchrun_finetunes_in_two_processes(tmp_path):
    original = shapft_testing.write_model(tmp_path / "original.pt", "cnn_lstm")
    frames = tmp_path / "tiny-train"
    recording.write(frames, shapft_testing.tone_recording(5, [0, 10], seed=4), "tones")
    out = tmp_path / "direct.pt"
    code, stdout, stderr = torchrun("finetune", "--model", original, "--data", f"{frames}.sigmf-meta", "--out", out,
                                    "--method", "direct", "--epochs", 2, "--evaluate", f"{frames}.sigmf-meta",
                                    "--quiet")
    assert code == 0, stderr
    assert stdout.count(f"{out}: direct") == 1, stdout
    summary = model_file.load(out).metadata["training"]
    assert summary["world_size"] == 2 and summary["epochs_run"] == 2 and summary["method"] == "direct"


def test_a_batch_too_small_to_share_is_refused_in_one_line(shapft, dataset, tmp_path, monkeypatch):
    # refused from torchrun's environment alone, before the process group is joined
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, out, err = shapft(*train_args(dataset, tmp_path / "m.pt", 1), "--batch-size", 3)
    assert code == 2 and out == ""
    assert shapft_testing.one_line_error(err, "train") == (
        "shapft train: error: --batch-size 3 cannot be shared among 2 processes: each needs at least 2 frames "
        "of every batch, 4 in all")
    assert not (tmp_path / "m.pt").exists()


def test_the_other_commands_refuse_to_run_under_torchrun(shapft, dataset, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, out, err = shapft("evaluate", "--model", "m.pt", "--data", dataset / "test.sigmf-meta")
    assert code == 2 and out == ""
    assert "only `shapft train` and `shapft finetune` train in several processes" in \
        shapft_testing.one_line_error(err, "evaluate")


# --- the arithmetic: two processes step as one ------------------------------------------

def deterministic_net():
    """No dropout or batch norm: what two processes compute must be what one computes."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 8, 8, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 31, 11))


def splits():
    return [(rec.model_input(), rec.labels) for rec in (shapft_testing.tone_recording(5, [0, 10], seed=1),
                                                        shapft_testing.tone_recording(3, [0, 10], seed=2))]


def fit_in_group(rank, rendezvous, out):
    """One of two processes: join the gloo group, fit, rank 0 saves weights and history."""
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        model = deterministic_net()
        result = training.fit(model, *splits(), training.TrainConfig(epochs=3, batch_size=25, seed=1),
                              progress=False)
        if rank == 0:
            torch.save({"state": model.state_dict(), "history": result.history, "world_size": result.world_size},
                       out)
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_take_the_steps_of_one(tmp_path):
    torch.set_num_threads(1)
    alone = deterministic_net()
    single = training.fit(alone, *splits(), training.TrainConfig(epochs=3, batch_size=25, seed=1), progress=False)
    out = tmp_path / "group.pt"
    torch.multiprocessing.spawn(fit_in_group, args=(tmp_path / "rendezvous", out), nprocs=2)
    group = torch.load(out)
    assert group["world_size"] == 2 and single.world_size == 1
    for name, value in alone.state_dict().items():   # the same steps: equal but for the sums' rounding
        torch.testing.assert_close(group["state"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    for mine, theirs in zip(group["history"], single.history):
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-5)
        assert mine["val_acc"] == theirs["val_acc"] and mine["train_acc"] == theirs["train_acc"]
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
    moved = max(float((value - deterministic_net().state_dict()[name]).abs().max())
                for name, value in alone.state_dict().items())
    assert moved > 1e-3   # it trained: the agreement is not that of two untouched copies
