"""What the model-running commands do with awkward input: invalid frames (NaN, Inf, all
zero), models that carry a negative-point mask, attacked recordings, budgets above the
signal, outputs that cannot be written, truncated or misnamed recordings; and the
command line's help, --version and --threads, and the reproduce report on a model at
chance level."""
import json
import re
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import shapft_testing
from gnuradio.shapft.cli import main as shapft_main
from gnuradio.shapft.core import masks, model_file, recording
from gnuradio.shapft.learn import explain, metrics

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)

DROP = [17, 60, 77]
NAN_AT = 7          # where the NaN frame is inserted


def with_frame_inserted(rec, index, frame):
    """rec with `frame` inserted before frame `index` (label and SNR copied from there)."""
    return recording.Recording(np.insert(rec.frames, index, frame, axis=0), np.insert(rec.labels, index, rec.labels[index]),
                               np.insert(rec.snr_db, index, rec.snr_db[index]), dict(rec.info))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small CNN-LSTM, the same network fine-tuned-style on frames without DROP (a model
    file carrying that mask), and tone recordings: clean, with a NaN frame inserted, of
    125 samples (DROP already deleted), and of 64 samples."""
    root = tmp_path_factory.mktemp("cli_input")
    shapft_testing.write_model(root / "model.pt")
    sha = model_file.load(root / "model.pt").sha256
    mask = masks.make_mask(DROP, 128, "fgsm", 0.1, sha)
    shapft_testing.write_model(root / "masked.pt", frame_length=128 - len(DROP), mask=mask, seed=3)
    clean = shapft_testing.tone_recording(3, [0.0, 10.0], seed=4)        # 66 frames
    recording.write(root / "clean", clean, "tones")
    bad = clean.frames[NAN_AT].copy()
    bad[5] = np.nan
    recording.write(root / "nan", with_frame_inserted(clean, NAN_AT, bad), "tones, one NaN frame")
    keep = masks.keep_positions(mask)
    recording.write(root / "deleted", recording.Recording(clean.frames[:, keep], clean.labels, clean.snr_db),
                    "tones without the mask's positions")
    recording.write(root / "short", shapft_testing.tone_recording(1, [10.0], seed=5, length=64), "64 samples")
    return root


# --- invalid frames: one rule, skipped and counted -----------------------------------------

def test_frame_validity_names_nan_inf_and_all_zero_frames_and_keeps_extreme_good_ones():
    frames = shapft_testing.random_frames(6, 16, seed=1)
    frames[1, 3] = np.nan
    frames[2, 0] = np.inf
    frames[3] = 0
    frames[4] *= 1e20          # energy overflows float32, but every sample is finite
    frames[5] *= 1e-24         # energy underflows to 0, but the samples are not all zero
    valid, reasons = recording.frame_validity(frames)
    assert valid.tolist() == [True, False, False, False, True, True]
    assert reasons == {1: "nan", 2: "inf", 3: "zero"}


def test_check_frames_skips_or_refuses_and_refuses_a_recording_without_valid_frames():
    rec = shapft_testing.tone_recording(1, [10.0], seed=1)
    frames = rec.frames.copy()
    frames[[2, 6]] = 0
    frames[4, 1] = -np.inf
    bad = recording.Recording(frames, rec.labels, rec.snr_db)
    kept, check = recording.check_frames(bad, "skip", "--data X")
    assert len(kept) == len(rec) - 3 and check.kept.tolist() == [i for i in range(len(rec)) if i not in (2, 4, 6)]
    np.testing.assert_array_equal(kept.frames, rec.frames[check.kept])
    assert check.as_json() == {"frames_invalid": {"nan": 0, "inf": 1, "zero": 2},
                               "invalid_frame_indices": {"nan": [], "inf": [4], "zero": [2, 6]}}
    with pytest.raises(ValueError, match=r"--data X: frame 2 is invalid, all samples zero \(3 invalid frames"):
        recording.check_frames(bad, "error", "--data X")
    nothing = recording.Recording(np.zeros((3, 8)), [0, 1, 2], [0, 0, 0])
    with pytest.raises(ValueError, match="all 3 frames are invalid"):
        recording.check_frames(nothing, "skip", "--data Y")


def test_evaluate_gives_the_same_accuracy_with_a_nan_frame_and_counts_it(shapft, files, tmp_path):
    results = {}
    for name in ("clean", "nan"):
        code, out, err = shapft("evaluate", "--model", files / "model.pt", "--data", files / f"{name}.sigmf-meta",
                                "--attacks", "fgsm:0.05", "--json", tmp_path / f"{name}.json", "--quiet")
        assert code == 0, err
        results[name] = (json.loads((tmp_path / f"{name}.json").read_text()), out)
    (clean, clean_out), (nan, nan_out) = results["clean"], results["nan"]
    assert nan["frames"] == clean["frames"] == 66
    for key in ("accuracy", "per_snr", "confusion", "frames_per_snr"):
        assert nan["clean"][key] == clean["clean"][key], key
        assert nan["attacks"][0][key] == clean["attacks"][0][key], key
    assert clean["frames_invalid"] == {"nan": 0, "inf": 0, "zero": 0}
    assert nan["frames_invalid"] == {"nan": 1, "inf": 0, "zero": 0}
    assert nan["invalid_frame_indices"] == {"nan": [NAN_AT], "inf": [], "zero": []}
    assert f"1 invalid frame skipped (nan 1, inf 0, zero 0: frame {NAN_AT})" in nan_out
    assert "invalid" not in clean_out

    code, _, err = shapft("evaluate", "--model", files / "model.pt", "--data", files / "nan.sigmf-meta",
                          "--invalid-frames", "error", "--quiet")
    assert code == 2 and f"frame {NAN_AT} is invalid, NaN samples" in shapft_testing.one_line_error(err, "evaluate")


def test_explain_and_mask_give_the_same_values_and_mask_with_a_nan_frame(shapft, files, tmp_path):
    masks_made = {}
    for name in ("clean", "nan"):
        npz = tmp_path / f"{name}.npz"
        code, out, err = shapft("explain", "--model", files / "model.pt", "--background", files / f"{name}.sigmf-meta",
                                "--data", files / f"{name}.sigmf-meta", "--out", npz, "--outputs", "true",
                                "--background-size", 20, "--nsamples", 4, "--quiet")
        assert code == 0, err
        code, mask_out, err = shapft("mask", "--shap", npz, "--eps", 0.05, "--out", tmp_path / f"{name}.json")
        assert code == 0, err
        masks_made[name] = (explain.load(npz), masks.load(tmp_path / f"{name}.json"), out, mask_out)
    (clean, clean_mask, _, clean_mask_out), (nan, nan_mask, nan_out, nan_mask_out) = masks_made["clean"], masks_made["nan"]
    np.testing.assert_array_equal(nan["shap_values"], clean["shap_values"])
    assert np.isfinite(nan["shap_values"]).all()
    assert nan_mask["drop"] == clean_mask["drop"] and nan_mask["m"] == clean_mask["m"]
    # the .npz says which frames were skipped; indices are those of the recording
    assert nan["invalid_indices"].tolist() == [NAN_AT] and nan["invalid_reasons"].tolist() == ["nan"]
    assert NAN_AT not in nan["frame_indices"] and len(nan["frame_indices"]) == 66
    assert nan["background_invalid_indices"].tolist() == [NAN_AT]
    assert NAN_AT not in nan["background_indices"]
    assert clean["invalid_indices"].tolist() == []
    assert "--data: 1 invalid frame skipped (nan 1" in nan_out and "--background: 1 invalid frame" in nan_out
    assert nan_mask["frames_invalid"] == {"nan": 1, "inf": 0, "zero": 0}
    assert clean_mask["frames_invalid"] == {"nan": 0, "inf": 0, "zero": 0}
    assert f"1 invalid frame skipped by explain (nan 1, inf 0, zero 0: frame {NAN_AT})" in nan_mask_out
    assert "invalid" not in clean_mask_out


def test_attack_leaves_invalid_frames_out_and_says_so(shapft, files, tmp_path):
    for name in ("clean", "nan"):
        code, out, err = shapft("attack", "--model", files / "model.pt", "--data", files / f"{name}.sigmf-meta",
                                "--method", "fgsm", "--eps", 0.05, "--out", tmp_path / name, "--quiet")
        assert code == 0, err
    clean, nan = recording.read(tmp_path / "clean" / "clean"), recording.read(tmp_path / "nan" / "nan")
    np.testing.assert_array_equal(nan.frames, clean.frames)
    np.testing.assert_array_equal(nan.labels, clean.labels)
    assert nan.info["attack"]["frames_invalid"] == {"nan": 1, "inf": 0, "zero": 0}
    assert nan.info["attack"]["invalid_frame_indices"]["nan"] == [NAN_AT]
    assert clean.info["attack"]["frames_invalid"] == {"nan": 0, "inf": 0, "zero": 0}
    assert "66 frames" in out and f"1 invalid frame of the input left out, not attacked (nan 1, inf 0, zero 0: " \
                                  f"frame {NAN_AT})" in out


@pytest.fixture(scope="module")
def dataset_pair(files, tmp_path_factory):
    """Two dataset directories with the same valid frames; the second has a NaN frame in
    train and an all-zero frame in val."""
    clean = recording.read(files / "clean")
    root = tmp_path_factory.mktemp("datasets")
    for name in ("clean", "bad"):
        (root / name).mkdir()
        train, val = clean, clean.subset(np.arange(0, 66, 2))
        if name == "bad":
            nan_frame = clean.frames[3].copy()
            nan_frame[0] = np.nan
            train = with_frame_inserted(train, 3, nan_frame)
            val = with_frame_inserted(val, 5, np.zeros(128))
        recording.write(root / name / "train", train, "train")
        recording.write(root / name / "val", val, "val")
    return root


def test_train_skips_invalid_frames_of_every_split(dataset_pair, tmp_path):
    weights = {}
    for name in ("clean", "bad"):
        out = tmp_path / f"{name}.pt"
        assert shapft_main(["train", "--arch", "transformer_compact", "--data", str(dataset_pair / name),
                            "--out", str(out), "--epochs", "1", "--batch-size", "16", "--quiet"]) == 0
        weights[name] = model_file.load(out).module.state_dict()
        report = json.loads(out.with_suffix(".training.json").read_text())
        weights[name + ".report"] = report
    for key, value in weights["clean"].items():
        assert torch.equal(weights["bad"][key], value), key
    assert weights["bad.report"]["summary"]["frames_invalid"] == {
        "train": {"nan": 1, "inf": 0, "zero": 0}, "val": {"nan": 0, "inf": 0, "zero": 1}}
    assert weights["bad.report"]["invalid_frame_indices"]["train"]["nan"] == [3]
    assert weights["bad.report"]["invalid_frame_indices"]["val"]["zero"] == [5]


def test_finetune_skips_invalid_frames(shapft, files, tmp_path):
    states = {}
    for name in ("clean", "nan"):
        out = tmp_path / f"{name}.pt"
        code, stdout, err = shapft("finetune", "--model", files / "model.pt", "--data", files / f"{name}.sigmf-meta",
                                   "--out", out, "--method", "direct", "--epochs", 1, "--patience", 1,
                                   "--evaluate", files / f"{name}.sigmf-meta", "--quiet")
        assert code == 0, err
        states[name] = (model_file.load(out), stdout)
    (clean, clean_out), (nan, nan_out) = states["clean"], states["nan"]
    for key, value in clean.module.state_dict().items():
        assert torch.equal(nan.module.state_dict()[key], value), key
    assert nan.metadata["provenance"]["frames_invalid"] == {"nan": 1, "inf": 0, "zero": 0}
    assert f"--data: 1 invalid frame skipped (nan 1, inf 0, zero 0: frame {NAN_AT})" in nan_out
    assert "--evaluate: 1 invalid frame skipped" in nan_out
    accuracy = re.search(r"accuracy ([0-9.]+)% over (\d+) frames", clean_out).groups()
    assert re.search(r"accuracy ([0-9.]+)% over (\d+) frames", nan_out).groups() == accuracy


# --- a model that carries its mask, on full-length frames ----------------------------------

def test_evaluate_a_model_carrying_a_mask_on_full_and_deleted_frames(shapft, files, tmp_path):
    loaded = model_file.load(files / "masked.pt")
    clean = recording.read(files / "clean")
    keep = masks.keep_positions(loaded.mask)
    by_hand = metrics.accuracy_report(
        clean.labels, metrics.predict_logits(loaded.module, clean.model_input()[:, :, keep]).argmax(axis=1),
        clean.snr_db)
    for name in ("clean", "deleted"):
        code, out, err = shapft("evaluate", "--model", files / "masked.pt", "--data", files / f"{name}.sigmf-meta",
                                "--json", tmp_path / f"{name}.json", "--quiet")
        assert code == 0, err
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert result["clean"]["accuracy"] == by_hand["accuracy"]
        assert result["clean"]["confusion"] == by_hand["confusion"]
    assert json.loads((tmp_path / "clean.json").read_text())["mask_applied"] == 3
    assert json.loads((tmp_path / "deleted.json").read_text())["mask_applied"] is None
    code, _, err = shapft("evaluate", "--model", files / "masked.pt", "--data", files / "short.sigmf-meta")
    assert code == 2
    assert "frames of 64 samples, but the model takes 128 (its mask deletes 3 positions) or 125" in \
        shapft_testing.one_line_error(err, "evaluate")


def test_attack_and_explain_a_model_carrying_a_mask_through_its_deletion(shapft, files, tmp_path):
    loaded = model_file.load(files / "masked.pt")
    clean = recording.read(files / "clean")
    keep = masks.keep_positions(loaded.mask)
    code, out, err = shapft("attack", "--model", files / "masked.pt", "--data", files / "clean.sigmf-meta",
                            "--method", "fgsm", "--eps", 0.05, "--out", tmp_path, "--quiet")
    assert code == 0, err
    attacked = recording.read(tmp_path / "clean")
    x_adv, _ = shapft_testing.hand_adaptive(loaded.module, keep, clean.model_input(), clean.labels, 0.05)
    np.testing.assert_allclose(attacked.model_input(), x_adv.numpy(), rtol=0, atol=1e-7)
    delta = attacked.model_input() - clean.model_input()
    assert not delta[:, :, DROP].any() and np.abs(delta[:, :, keep]).max() > 0   # the deletion hides DROP
    assert attacked.info["attack"]["mask_applied"] == 3

    code, _, err = shapft("explain", "--model", files / "masked.pt", "--background", files / "clean.sigmf-meta",
                          "--data", files / "clean.sigmf-meta", "--out", tmp_path / "shap.npz", "--outputs", "true",
                          "--background-size", 10, "--nsamples", 3, "--quiet")
    assert code == 0, err
    values = explain.load(tmp_path / "shap.npz")["shap_values"]
    assert values.shape == (66, 2, 128, 1)
    assert not values[:, :, DROP].any() and np.abs(values[:, :, keep]).max() > 0


# --- an attacked recording is labelled from its attack ----------------------------------------

def test_evaluate_labels_an_attacked_recording_as_recorded(shapft, files, tmp_path):
    code, _, err = shapft("attack", "--model", files / "model.pt", "--data", files / "clean.sigmf-meta",
                          "--method", "fgsm", "--eps", 0.05, "--out", tmp_path, "--quiet")
    assert code == 0, err
    code, out, err = shapft("evaluate", "--model", files / "model.pt", "--data", tmp_path / "clean.sigmf-meta",
                            "--json", tmp_path / "r.json", "--quiet")
    assert code == 0, err
    label = "as recorded (FGSM eps 0.05 (PSR -23.0 dB), untargeted, against model.pt)"
    rows = out.splitlines()
    assert any(row.startswith(label) for row in rows), out
    assert not any(row.startswith("clean") for row in rows), out
    assert json.loads((tmp_path / "r.json").read_text())["clean"]["description"] == label
    code, out, err = shapft("evaluate", "--model", files / "model.pt", "--data", files / "clean.sigmf-meta", "--quiet")
    assert any(row.startswith("clean ") for row in out.splitlines()), out


# --- budgets above the signal ---------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ("attack", "--method", "fgsm", "--eps", "1e6"),
    ("attack", "--method", "fgsm", "--psr-db", "40"),
    ("evaluate", "--method", "fgsm", "--psr-list", "40"),
    ("evaluate", "--attacks", "fgm:1e4"),
    ("mask", "--eps", "1e6"),
    ("finetune", "--method", "at_fgsm", "--eps", "2"),
])
def test_a_budget_above_0_db_psr_warns_in_one_line(shapft, files, tmp_path, command):
    name, *options = command
    inputs = {"attack": ("--model", files / "model.pt", "--data", files / "clean.sigmf-meta", "--out", tmp_path),
              "evaluate": ("--model", files / "model.pt", "--data", files / "clean.sigmf-meta"),
              "finetune": ("--model", files / "model.pt", "--data", files / "clean.sigmf-meta",
                           "--out", tmp_path / "ft.pt", "--epochs", 1, "--patience", 1)}
    if name == "mask":
        npz = tmp_path / "shap.npz"
        assert shapft("explain", "--model", files / "model.pt", "--background", files / "clean.sigmf-meta",
                      "--data", files / "clean.sigmf-meta", "--out", npz, "--outputs", "true",
                      "--background-size", 5, "--nsamples", 2, "--quiet")[0] == 0
        inputs["mask"] = ("--shap", npz, "--out", tmp_path / "m.json", "--frames", "all")
    quiet = () if name == "mask" else ("--quiet",)
    code, _, err = shapft(name, *inputs[name], *options, *quiet)
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"shapft {name}: warning: ") and \
        "above 0 dB PSR" in lines[0], err


def test_a_budget_below_0_db_psr_does_not_warn(shapft, files, tmp_path):
    code, _, err = shapft("evaluate", "--model", files / "model.pt", "--data", files / "clean.sigmf-meta",
                          "--method", "fgsm", "--psr-list", "-0.5", "--quiet")
    assert code == 0 and err.strip() == ""


# --- outputs checked before the work; errors without temporary names ------------------------

def test_unwritable_outputs_are_refused_before_the_work(shapft, files, tmp_path, monkeypatch):
    from gnuradio.shapft import attacks

    def no_work(*args, **kwargs):
        raise AssertionError("the work ran before the outputs were checked")

    monkeypatch.setattr(metrics, "evaluate", no_work)
    monkeypatch.setattr(attacks, "attack_array", no_work)
    monkeypatch.setattr(explain, "expected_gradients", no_work)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    evaluate = ("evaluate", "--model", files / "model.pt", "--data", files / "clean.sigmf-meta", "--quiet")
    for option in ("--json", "--figure"):
        code, _, err = shapft(*evaluate, option, blocker / "out")
        assert code == 2 and f"{option} {blocker / 'out'}: {blocker} is not a directory" in \
            shapft_testing.one_line_error(err, "evaluate")
        code, _, err = shapft(*evaluate, option, tmp_path)
        assert code == 2 and f"{option} {tmp_path}: is a directory" in shapft_testing.one_line_error(err, "evaluate")
    code, _, err = shapft("explain", "--model", files / "model.pt", "--background", files / "clean.sigmf-meta",
                          "--data", files / "clean.sigmf-meta", "--out", blocker / "x.npz", "--quiet")
    assert code == 2 and "--out" in shapft_testing.one_line_error(err, "explain")
    # an attacked recording already in OUT is refused before attacking, not after
    (tmp_path / "adv").mkdir()
    (tmp_path / "adv" / "clean.sigmf-meta").write_text("{}")
    code, _, err = shapft("attack", "--model", files / "model.pt", "--data", files / "clean.sigmf-meta",
                          "--method", "fgsm", "--eps", 0.05, "--out", tmp_path / "adv", "--quiet")
    assert code == 2 and "exists; pass --force" in shapft_testing.one_line_error(err, "attack")

    # a directory that takes no files (read-only, full, ...): the option and path, no temporary name
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".tmpab12cd"))

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    code, _, err = shapft(*evaluate, "--json", tmp_path / "r.json")
    line = shapft_testing.one_line_error(err, "evaluate")
    assert f"--json {tmp_path / 'r.json'}: cannot write in {tmp_path} (Permission denied)" in line
    assert ".tmp" not in line


# --- recordings: truncated data, a directory for --data --------------------------------------

def test_a_truncated_data_file_is_reported_as_truncated_without_sigmf_warnings(shapft, files, tmp_path):
    data = (files / "clean.sigmf-data").read_bytes()
    (tmp_path / "cut.sigmf-meta").write_bytes((files / "clean.sigmf-meta").read_bytes())
    (tmp_path / "cut.sigmf-data").write_bytes(data[:10000])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        with pytest.raises(ValueError, match=r"cut.sigmf-data: truncated: 1250 samples, annotations describe 8448"):
            recording.read(tmp_path / "cut")
        assert warnings.filters == filters            # restored after the read
    assert [str(w.message) for w in caught] == []
    code, _, err = shapft("evaluate", "--model", files / "model.pt", "--data", tmp_path / "cut.sigmf-meta")
    assert code == 2 and "truncated: 1250 samples, annotations describe 8448" in shapft_testing.one_line_error(err, "evaluate")
    assert "hash" not in err

    # sigmf's own warnings stay quiet (here: shapft keys without the extension declared,
    # as in a hand-written file), for a recording read and for one refused
    meta = json.loads((files / "clean.sigmf-meta").read_text())
    del meta["global"]["core:extensions"]
    (tmp_path / "undeclared.sigmf-meta").write_text(json.dumps(meta))
    (tmp_path / "undeclared.sigmf-data").write_bytes(data)
    meta["global"]["core:sha512"] = "0" * 128
    (tmp_path / "hash.sigmf-meta").write_text(json.dumps(meta))
    (tmp_path / "hash.sigmf-data").write_bytes(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(recording.read(tmp_path / "undeclared")) == 66
        with pytest.raises(ValueError, match="not a valid SigMF recording"):
            recording.read(tmp_path / "hash")
    assert [str(w.message) for w in caught] == []


def test_a_directory_given_as_a_recording_is_named_as_such(shapft, files, tmp_path):
    for command in (("evaluate", "--model", files / "model.pt", "--data", tmp_path),
                    ("attack", "--model", files / "model.pt", "--data", tmp_path, "--method", "fgsm",
                     "--eps", 0.05, "--out", tmp_path / "o")):
        code, _, err = shapft(*command)
        assert code == 2
        assert f"--data {tmp_path}: is a directory; give a .sigmf-meta recording" in shapft_testing.one_line_error(err, command[0])


# --- the command line itself ----------------------------------------------------------------

MY_COMMANDS = ("generate", "train", "attack", "evaluate", "explain", "mask", "finetune", "uap", "robustness")


@pytest.mark.parametrize("name", MY_COMMANDS)
def test_every_option_has_help(name):
    import argparse
    import importlib
    from gnuradio.shapft import cli
    module = importlib.import_module(f"gnuradio.shapft.cli.{cli.COMMANDS[name][0]}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    lacking = [action.option_strings or action.dest for action in parser._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert lacking == []


def test_version_is_the_cmake_project_version(capsys):
    cmake = (Path(__file__).resolve().parent.parent / "CMakeLists.txt").read_text()
    parts = [re.search(rf"set\(VERSION_{part}\s+(\S+)\)", cmake).group(1) for part in ("MAJOR", "API", "ABI", "PATCH")]
    with pytest.raises(SystemExit) as done:
        shapft_main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"shapft {'.'.join(parts)}"


def test_threads_0_is_torchs_default_and_negative_is_refused(shapft, files):
    before = torch.get_num_threads()
    code, _, err = shapft("evaluate", "--model", files / "model.pt", "--data", files / "clean.sigmf-meta",
                          "--threads", 0, "--quiet")
    assert code == 0, err
    assert torch.get_num_threads() == before
    code, _, err = shapft("evaluate", "--model", files / "model.pt", "--data", files / "clean.sigmf-meta",
                          "--threads", -1, "--quiet")
    assert code == 2 and "--threads must be >= 0 (0 = torch's default, one per core)" in \
        shapft_testing.one_line_error(err, "evaluate")



@pytest.mark.parametrize("during", ["import", "parse"])
def test_ctrl_c_while_the_command_loads_is_an_interrupt_not_a_traceback(shapft, monkeypatch, during):
    import argparse
    import importlib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    if during == "import":
        monkeypatch.setattr(importlib, "import_module", interrupted)
    else:
        monkeypatch.setattr(argparse.ArgumentParser, "parse_args", interrupted)
    try:
        code, out, err = shapft("train", "--help")
    except KeyboardInterrupt:   # left to Python: a traceback
        pytest.fail(f"Ctrl-C during the command's {during} escapes main()")
    assert (code, out, err) == (130, "", "shapft train: interrupted\n")

# --- the reproduce report on a model at chance level ------------------------------------------

def fake_run(tmp_path, clean):
    """A pipeline and evaluation results where the original model has clean accuracy `clean`."""
    from gnuradio.shapft.studies import defense_eval
    pipeline = types.SimpleNamespace(
        out=tmp_path, seed=1,
        preset=types.SimpleNamespace(name="micro", eps_levels=(0.05, 0.1), seeds=(0, 1), at_fgsm_seeds=(0,)))
    results = {}
    for eps in pipeline.preset.eps_levels:
        entry = {"eps": eps, "m": 5, "frame_rule": "all", "frames_used": 10,
                 "original": {"clean": clean, "attacked": clean - 0.05}}
        for method in defense_eval.METHODS:
            entry[method] = {str(seed): {"clean": clean, "attacked": clean + 0.11, "adaptive": clean, "m": 5}
                             for seed in (0, 1)}
        results[f"{eps:g}"] = entry
    return pipeline, results


@pytest.mark.parametrize("clean, meaningful", [(0.12, False), (0.9, True)])
def test_report_gives_no_verdicts_for_a_model_near_chance(tmp_path, clean, meaningful):
    from gnuradio.shapft.studies import report
    pipeline, results = fake_run(tmp_path, clean)
    rows = report._table_rows(pipeline, results)
    bars = report._bars(rows)
    text = report.markdown(pipeline, rows, bars, {}, {}, None)
    assert bars["meaningful"] is meaningful
    verdicts = [line for line in text.splitlines() if line.startswith("- SHAP-FT recovers at least half")]
    if meaningful:
        assert len(verdicts) == 1 and bars["recovers_half_at_every_eps"] is True
        assert "320%" in text
    else:
        assert verdicts == [] and bars["recovers_half_at_every_eps"] is None
        assert "too weak for the bars to mean anything" in text and "12.0%" in text
        assert "320%" not in text


# --- the precision of reproduce's distill stage ------------------------------------------------

@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_reproduce_runs_the_distill_stage_in_its_precision(tmp_path, precision):
    from gnuradio.shapft.core import artifacts
    from gnuradio.shapft.studies import reproduce

    class Noted(reproduce.Pipeline):
        """The stage's call as Pipeline.call notes it in commands.log, without the hours it runs."""
        def call(self, command, function, *options, threads=None, **kwargs):
            self.called = artifacts.command_line(command, *options), kwargs

    pipeline = Noted(tmp_path, reproduce.PRESETS["micro"], precision=precision)
    pipeline.stage_distill()
    command, kwargs = pipeline.called
    expected = "fp32" if precision == "auto" else precision   # auto keeps the compact students in fp32
    assert kwargs["settings"].precision == expected
    assert ("--precision bf16" in command) == (expected == "bf16") and "--precision fp32" not in command
    assert "--precision auto" not in command


def test_report_shows_an_eps_without_shapft_models_as_not_available(tmp_path):
    # A mask that leaves fewer samples than the CNN-LSTM's kernel: no SHAP-FT or random-deletion
    # model at that eps (Pipeline.deletion_skipped); the report says why instead of failing.
    from gnuradio.shapft.studies import defense_eval, report
    pipeline, results = fake_run(tmp_path, 0.9)
    reason = "the mask deletes 125 positions, leaving 3 samples, fewer than the CNN-LSTM's convolution kernel (8)"
    entry = results["0.1"]
    entry["shapft"], entry["random"] = {}, {}
    entry["skipped"] = {"shapft": reason, "random": reason}
    rows = report._table_rows(pipeline, results)
    assert defense_eval.summarise({})["attacked"] == {"mean": None, "std": None, "n": 0, "values": []}
    bars = report._bars(rows)
    assert bars["recovers_half_at_every_eps"] is True     # the verdict of the eps that has SHAP-FT
    text = report.markdown(pipeline, rows, bars, {}, {}, None)
    assert f"- eps 0.1: no verdict, {reason}" in text and f"- eps 0.1: n/a ({reason})" in text
    table_row = next(line for line in text.splitlines() if line.startswith("| 0.1 | -17.0 |"))
    assert table_row.count("n/a") == 4   # SHAP-FT, random, SHAP-FT adaptive, recovered
    json.dumps(rows, allow_nan=False)    # results.json stays strict JSON
