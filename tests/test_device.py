"""Device selection: the rule of models.device (auto = cuda when available, else cpu),
--device on every command that runs a model, one-line refusals of devices this machine
lacks (from the library and from each command), and --device cpu giving the default's
results. Runs on the CPU: the devices refused are ones this machine does not have (the
blocks' `device` parameter is checked by their QA tests)."""
import argparse
import importlib
import json

import numpy as np
import pytest
import torch
from torch import nn

from gnuradio.shapft.cli import COMMANDS
from gnuradio.shapft.core import model_file, recording
from gnuradio.shapft.models import device as model_device
import shapft_testing

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# The commands that run a model; every other one reads or writes files only (classify
# runs its model in classifier_sink, whose `device` parameter it does not expose yet).
RUNS_A_MODEL = ("train", "attack", "evaluate", "uap", "robustness", "certify", "explain", "finetune",
                "detector", "detection", "distill", "reproduce")


def help_text(command):
    module = importlib.import_module(f"gnuradio.shapft.cli.{COMMANDS[command][0]}")
    parser = argparse.ArgumentParser(prog=f"shapft {command}")
    module.add_arguments(parser)
    return parser.format_help()


def test_auto_is_cuda_when_available_else_cpu():
    expected = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    assert model_device.resolve("auto") == expected
    assert model_device.resolve() == expected
    assert model_device.resolve("cpu") == model_device.resolve(" CPU ") == torch.device("cpu")
    assert model_device.resolve(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", shapft_testing.unavailable_devices())
def test_a_device_this_machine_lacks_is_refused_in_one_line_naming_it(name):
    with pytest.raises(ValueError, match=rf"^device: {name} is not available \([^\n]+\)$"):
        model_device.resolve(name)
    with pytest.raises(ValueError, match=rf"^--device: {name} is not available"):
        model_device.resolve(name, "--device")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "cuda:-1", "cuda1", ""])
def test_names_that_are_no_device_are_refused(name):
    with pytest.raises(ValueError, match=rf"^device: {name!r} is not one of auto, cpu, cuda, cuda:N, mps$"):
        model_device.resolve(name)
    with pytest.raises(TypeError, match="^device: must be one of"):
        model_device.resolve(0)


def test_a_module_computes_where_its_parameters_are():
    assert model_device.of(nn.Linear(2, 3)) == torch.device("cpu")
    assert model_device.of(nn.ReLU()) == torch.device("cpu")            # no parameters
    assert model_device.of(lambda x: x) == torch.device("cpu")          # not a torch module
    assert model_device.of(nn.Linear(2, 3).to("meta")) == torch.device("meta")


def test_every_command_that_runs_a_model_takes_device():
    assert set(RUNS_A_MODEL) <= set(COMMANDS)
    for command in COMMANDS:
        text = help_text(command)
        if command in RUNS_A_MODEL:
            assert "--device DEVICE" in text and "auto = cuda when available, else cpu" in " ".join(text.split()), \
                command
        # a command that chooses a precision runs a model: it must choose the device too
        assert "--precision" not in text or "--device" in text, command


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small model file, a detector for it, a recording and a dataset directory."""
    root = tmp_path_factory.mktemp("device")
    model = shapft_testing.write_model(root / "m.pt", "transformer_compact")
    detector = shapft_testing.write_detector(root / "d.pt", model, features="statistics")
    data = root / "data"
    for name, seed in (("train", 1), ("val", 2), ("test", 3)):
        recording.write(data / name, shapft_testing.tone_recording(2, [0, 10], seed=seed), f"tones, {name}")
    return {"model": model, "detector": detector, "rec": data / "test.sigmf-meta", "data": data}


def command_line(command, files, out):
    m, rec, data = files["model"], files["rec"], files["data"]
    return {
        "train": ["--arch", "transformer_compact", "--data", data, "--out", out / "t.pt"],
        "attack": ["--model", m, "--data", rec, "--method", "fgsm", "--eps", 0.05, "--out", out / "adv"],
        "evaluate": ["--model", m, "--data", rec],
        "uap": ["--model", m, "--data", rec, "--eps", 0.05, "--out", out / "u.npz"],
        "robustness": ["--models", m, "--data", rec, "--out", out / "board"],
        "certify": ["--model", m, "--data", rec, "--out", out / "certify", "--sigma-psr-db", -20],
        "explain": ["--model", m, "--background", rec, "--data", rec, "--out", out / "s.npz"],
        "finetune": ["--model", m, "--data", rec, "--out", out / "f.pt", "--method", "direct"],
        "detector": ["--model", m, "--data", data, "--out", out / "d.pt"],
        "detection": ["--detector", files["detector"], "--model", m, "--data", data, "--out", out / "det"],
        "distill": ["--data", data, "--out", out / "distill"],
        "reproduce": ["--preset", "micro", "--out", out / "run"],
    }[command]


@pytest.mark.parametrize("command", RUNS_A_MODEL)
def test_each_command_refuses_a_device_this_machine_lacks_in_one_line(shapft, files, tmp_path, command):
    for name in shapft_testing.unavailable_devices():
        code, out, err = shapft(command, *command_line(command, files, tmp_path), "--device", name, "--quiet")
        assert code == 2, err
        line = shapft_testing.one_line_error(err, command)
        assert f"--device: {name} is not available (" in line, line
        assert out == ""


@pytest.mark.skipif(not shapft_testing.auto_is_cpu(), reason="device auto is a GPU here")
def test_device_cpu_gives_the_results_of_the_default(shapft, files, tmp_path):
    runs = {}
    for label, extra in (("default", []), ("cpu", ["--device", "cpu"])):   # one thread: bit for bit
        out = tmp_path / label
        assert shapft("evaluate", "--model", files["model"], "--data", files["rec"], "--attacks", "pgd:0.05,fgm:0.5",
                      "--json", out / "eval.json", "--threads", 1, "--quiet", *extra)[0] == 0
        assert shapft("train", "--arch", "transformer_compact", "--data", files["data"], "--out", out / "t.pt",
                      "--epochs", 2, "--batch-size", 16, "--seed", 3, "--threads", 1, "--quiet", *extra)[0] == 0
        runs[label] = (json.loads((out / "eval.json").read_text()), model_file.load(out / "t.pt"))
    (evaluated, trained), (evaluated_cpu, trained_cpu) = runs["default"], runs["cpu"]
    assert evaluated_cpu == evaluated
    assert all(attack["measured_psr_db"] is not None for attack in evaluated["attacks"])   # the attacks ran
    for name, value in trained.module.state_dict().items():
        assert torch.equal(trained_cpu.module.state_dict()[name], value), name
    for key in ("epochs_run", "best_epoch", "best_val_loss", "best_val_acc", "test_accuracy"):
        assert trained_cpu.metadata["training"][key] == trained.metadata["training"][key], key
    assert trained.metadata["training"]["device"] == trained_cpu.metadata["training"]["device"] == "cpu"
    assert np.isfinite(trained.metadata["training"]["best_val_loss"])
