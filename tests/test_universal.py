"""attacks.universal (universal adversarial perturbations) against closed forms on a
linear model, against noise of the same budget on a small trained model, its shifts;
their files (core.perturbation_file); and `shapft uap` end to end."""
import json
import math
import re

import numpy as np
import pytest
import torch
from torch import nn

import shapft_testing
from gnuradio.shapft.attacks import universal
from gnuradio.shapft.core import budget, masks, model_file, perturbation_file, recording
from gnuradio.shapft.learn import training
from gnuradio.shapft.learn.metrics import predict_logits

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)

LENGTH = 32
CLASSES = 11


def linear_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(2 * LENGTH, CLASSES, bias=False)).eval()


def frames(n, seed=1, length=LENGTH):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2, length)).astype(np.float32), rng.integers(0, CLASSES, n)


def mean_gradient(model, x, labels):
    """d mean CE / d p at p = 0 for logits = W x, in float64 numpy: mean of W^T (softmax - onehot)."""
    weight = model[1].weight.detach().numpy().astype(np.float64)
    logits = x.reshape(len(x), -1).astype(np.float64) @ weight.T
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    softmax[np.arange(len(x)), labels] -= 1
    return (softmax @ weight).mean(axis=0).reshape(2, -1)


def mean_ce(model, x, labels):
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(labels)))


# --- closed forms on a linear model ---------------------------------------------------------

def test_one_full_batch_linf_step_is_eps_times_the_sign_of_the_mean_gradient():
    model = linear_model()
    x, labels = frames(40)
    p = universal.compute(model, x, labels, eps=0.05, epochs=1, batch_size=len(x), step=0.05)
    g = mean_gradient(model, x, labels)
    assert np.abs(g).min() > 1e-6      # no sign left to rounding
    np.testing.assert_array_equal(np.sign(p), np.sign(g))
    np.testing.assert_allclose(np.abs(p), 0.05, rtol=1e-6)


def test_one_full_batch_l2_step_is_eps_along_the_mean_gradient():
    model = linear_model()
    x, labels = frames(40)
    p = universal.compute(model, x, labels, eps=0.8, norm="l2", epochs=1, batch_size=len(x), step=0.8)
    g = mean_gradient(model, x, labels)
    np.testing.assert_allclose(p, 0.8 * g / np.linalg.norm(g), rtol=1e-5, atol=1e-7)


def test_the_ascent_raises_the_mean_loss_above_any_random_perturbation_of_the_budget():
    model = linear_model()
    x, labels = frames(200)
    p = universal.compute(model, x, labels, eps=0.1, epochs=5, batch_size=32)
    rng = np.random.default_rng(2)
    random_signs = [mean_ce(model, x + rng.choice([-0.1, 0.1], (2, LENGTH)).astype(np.float32), labels)
                    for _ in range(20)]
    assert mean_ce(model, x + p, labels) > max(random_signs) > mean_ce(model, x, labels) - 0.1
    # mostly with the sign of the mean gradient at 0 (random signs agree on half)
    assert np.mean(np.sign(p) == np.sign(mean_gradient(model, x, labels))) > 0.75


@pytest.mark.parametrize("norm, eps, psr_db", [("linf", 0.05, None), ("linf", None, -23.0),
                                               ("l2", 0.8, None), ("l2", None, -20.0)])
def test_the_budget_holds_exactly(norm, eps, psr_db):
    model = linear_model()
    x, labels = frames(64)
    limit = budget.resolve_eps(eps, psr_db, norm, LENGTH)
    p = universal.compute(model, x, labels, eps=eps, psr_db=psr_db, norm=norm, epochs=3, batch_size=16,
                          step=limit)   # eps-sized steps: on the boundary
    values = p.astype(np.float64)
    size = np.abs(values).max() if norm == "linf" else math.sqrt(np.sum(values ** 2))
    assert p.dtype == np.float32 and p.shape == (2, LENGTH)
    assert limit * (1 - 1e-5) < size <= limit   # 0.05 is not a float32: the nearest one is above


def test_eps_0_gives_zeros_and_the_model_is_left_as_it_was():
    model = linear_model()
    model.train()
    x, labels = frames(8)
    np.testing.assert_array_equal(universal.compute(model, x, labels, eps=0.0), np.zeros((2, LENGTH)))
    universal.compute(model, x, labels, eps=0.1, epochs=1, random_shift=True)
    assert model.training
    assert all(parameter.grad is None for parameter in model.parameters())


# --- shifts ----------------------------------------------------------------------------------

def test_apply_rolls_the_perturbation_per_frame_by_the_seeded_draws():
    x, _ = frames(50)
    p = np.arange(2 * LENGTH, dtype=np.float32).reshape(2, LENGTH)
    np.testing.assert_array_equal(universal.apply(x, p), x + p)
    shifted = universal.apply(x, p, shift=True, seed=4)
    shifts = np.random.default_rng(4).integers(LENGTH, size=len(x))
    for frame, out, s in zip(x, shifted, shifts):
        np.testing.assert_array_equal(out, frame + np.roll(p, s, axis=-1))
    assert len(set(shifts.tolist())) > 20
    np.testing.assert_array_equal(universal.apply(x, p, shift=True, seed=4), shifted)
    assert not np.array_equal(universal.apply(x, p, shift=True, seed=5), shifted)


def test_shifts_drawn_in_pieces_are_the_shifts_drawn_at_once():
    # the injector draws per work() call; universal.apply draws all frames at once
    at_once = universal.draw_shifts(np.random.default_rng(3), 1000, 128)
    generator = np.random.default_rng(3)
    pieces = [universal.draw_shifts(generator, n, 128) for n in (1, 7, 300, 2, 690)]
    np.testing.assert_array_equal(np.concatenate(pieces), at_once)


def test_compute_is_deterministic_for_a_seed():
    model = linear_model()
    x, labels = frames(64)
    first = universal.compute(model, x, labels, eps=0.1, epochs=2, batch_size=16, random_shift=True, seed=3)
    again = universal.compute(model, x, labels, eps=0.1, epochs=2, batch_size=16, random_shift=True, seed=3)
    other = universal.compute(model, x, labels, eps=0.1, epochs=2, batch_size=16, random_shift=True, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_with_random_shift_the_ascent_follows_the_loss_expected_over_shifts():
    # One full-batch sign step: the sign of the mean over frames of each frame's
    # gradient rolled back by the shift it drew.
    model = linear_model()
    x, labels = frames(40)
    p = universal.compute(model, x, labels, eps=0.05, epochs=1, batch_size=len(x), step=0.05,
                          random_shift=True, seed=6)
    generator = np.random.default_rng(6)
    order = generator.permutation(len(x))
    shifts = universal.draw_shifts(generator, len(x), LENGTH)
    g = np.mean([np.roll(mean_gradient(model, x[i:i + 1], labels[i:i + 1]), -s, axis=-1)
                 for i, s in zip(order, shifts)], axis=0)
    assert np.abs(g).min() > 1e-7
    np.testing.assert_array_equal(np.sign(p), np.sign(g))


# --- against a trained model -----------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    """A small CNN-LSTM trained on 0 dB tones, and fresh tone frames to test on."""
    train, val = (shapft_testing.tone_recording(per_class, [0.0], seed=seed) for per_class, seed in ((20, 1), (5, 2)))
    model = shapft_testing.small_cnn_lstm(0)
    training.fit(model, (train.model_input(), train.labels), (val.model_input(), val.labels),
                 training.TrainConfig(epochs=10, batch_size=32, lr=1e-2, patience=10), progress=False)
    return model.eval(), train, shapft_testing.tone_recording(10, [0.0], seed=3)


def accuracy(model, x, labels):
    return float(np.mean(predict_logits(model, x).argmax(axis=1) == labels))


@pytest.mark.parametrize("random_shift", [False, True])
def test_a_uap_lowers_accuracy_on_unseen_frames_far_more_than_noise_of_its_budget(trained, random_shift):
    model, train, test = trained
    eps = 0.3
    p = universal.compute(model, train.model_input(), train.labels, eps=eps, epochs=5, batch_size=64,
                          random_shift=random_shift)
    x = test.model_input()
    noise = np.random.default_rng(0).choice([-eps, eps], size=p.shape).astype(np.float32)
    clean = accuracy(model, x, test.labels)
    with_noise = accuracy(model, universal.apply(x, noise, shift=random_shift, seed=1), test.labels)
    with_uap = accuracy(model, universal.apply(x, p, shift=random_shift, seed=1), test.labels)
    assert clean > 0.9 and with_noise > 0.85
    assert with_uap < with_noise - 0.2


# --- files -----------------------------------------------------------------------------------

def test_save_and_load_round_trip(tmp_path):
    p = np.random.default_rng(1).uniform(-0.05, 0.05, (2, 128)).astype(np.float32)
    written = perturbation_file.save(tmp_path / "p.npz", p, {"norm": "linf", "eps": 0.05, "seed": 3, "model": "m.pt"})
    loaded, info = perturbation_file.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(loaded, p)
    assert loaded.dtype == np.float32
    assert info == written
    assert info["method"] == "uap" and info["frame_length"] == 128 and info["seed"] == 3
    assert info["psr_db"] == pytest.approx(budget.eps_to_psr_db(0.05))
    import gnuradio.shapft
    assert info["shapft_version"] == gnuradio.shapft.__version__
    with np.load(tmp_path / "p.npz", allow_pickle=False) as npz:   # the documented layout
        assert sorted(npz.files) == ["format", "info", "perturbation"]
        assert npz["format"].item() == "shapft-uap/1" and json.loads(npz["info"].item()) == info


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def test_load_refuses_malformed_and_foreign_files_naming_them(tmp_path):
    good = np.zeros((2, 16), np.float32)
    info = json.dumps({"norm": "linf", "eps": 0.1})
    text = tmp_path / "text.npz"
    text.write_text("not a perturbation")
    np.save(tmp_path / "bare.npy", good)
    cases = {
        text: "not a .npz perturbation file",
        tmp_path / "bare.npy": "a .npy array",
        write_npz(tmp_path / "no_info.npz", format="shapft-uap/1", perturbation=good): "lacks info",
        write_npz(tmp_path / "foreign.npz", format="shapft-shap-values/1", perturbation=good, info=info):
            "format .*expected shapft-uap/1",
        write_npz(tmp_path / "not_json.npz", format="shapft-uap/1", perturbation=good, info="{"): "info is not JSON",
        write_npz(tmp_path / "shape.npz", format="shapft-uap/1", perturbation=np.zeros((3, 16), np.float32),
                  info=info): r"shaped \(3, 16\), expected \[2, L\]",
        write_npz(tmp_path / "f64.npz", format="shapft-uap/1", perturbation=good.astype(np.float64), info=info):
            "perturbation is float64, expected float32",
        write_npz(tmp_path / "norm.npz", format="shapft-uap/1", perturbation=good,
                  info=json.dumps({"norm": "l1", "eps": 0.1})): "info norm 'l1' is not one of linf, l2",
        write_npz(tmp_path / "over.npz", format="shapft-uap/1", perturbation=good + 0.2, info=info):
            "its linf size 0.2 exceeds its eps 0.1",
        write_npz(tmp_path / "nan.npz", format="shapft-uap/1", perturbation=good + np.nan, info=info):
            "has non-finite values",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=f"^perturbation file {path}: {message}") as caught:
            perturbation_file.load(path)
        assert "\n" not in str(caught.value)
    with pytest.raises(FileNotFoundError, match="missing.npz: no such file"):
        perturbation_file.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="^perturbation: its linf size"):
        perturbation_file.save(tmp_path / "out.npz", good + 0.2, {"norm": "linf", "eps": 0.1})
    assert not (tmp_path / "out.npz").exists()


def test_bad_arguments_are_refused_naming_them():
    model = linear_model()
    x, labels = frames(8)
    cases = [
        (dict(eps=0.1, psr_db=-20.0), "eps/psr_db: give the budget as exactly one"),
        (dict(eps=None), "eps/psr_db: give the budget as exactly one"),
        (dict(eps=-0.1), "eps: eps must be a finite number >= 0"),
        (dict(eps=0.1, norm="l1"), "norm: 'l1' is not one of linf, l2"),
        (dict(eps=0.1, epochs=0), "epochs: must be >= 1"),
        (dict(eps=0.1, batch_size=0), "batch_size: must be >= 1"),
        (dict(eps=0.1, step=0.0), "step: must be > 0"),
        (dict(eps=0.1, precision="fp16"), "precision: 'fp16' is not one of"),
        (dict(eps=0.1, labels=labels[:3]), r"labels: must be 8 class indices"),
        (dict(eps=0.1, labels=labels + CLASSES), r"labels: must be class indices in 0\.\.10"),
        (dict(eps=0.1, x=x[:, :1]), r"x: must be frames \[N, 2, L\]"),
    ]
    for kwargs, message in cases:
        arguments = {"x": x, "labels": labels, **kwargs}
        with pytest.raises(ValueError, match=f"^{message}"):
            universal.compute(model, arguments.pop("x"), arguments.pop("labels"), **arguments)
    with pytest.raises(ValueError, match=r"^perturbation: shaped \(2, 16\), but frames of 32 samples"):
        universal.apply(x, np.zeros((2, 16), np.float32))


# --- `shapft uap` ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small CNN-LSTM, one carrying a mask, and a small tone recording with a NaN frame."""
    root = tmp_path_factory.mktemp("uap")
    shapft_testing.write_model(root / "model.pt")
    drop = list(range(0, 128, 8))
    mask = masks.make_mask(drop, 128, "fgsm", 0.1, model_file.load(root / "model.pt").sha256)
    shapft_testing.write_model(root / "masked.pt", frame_length=128 - len(drop), mask=mask, seed=3)
    rec = shapft_testing.tone_recording(2, [0.0, 10.0], seed=4)
    rec.frames[5, 3] = np.nan
    recording.write(root / "tones", rec, "tones, one NaN frame")
    return root, drop


def test_the_command_writes_the_perturbation_and_prints_its_effect(shapft, files, tmp_path):
    root, _ = files
    out = tmp_path / "uap.npz"
    code, stdout, err = shapft("uap", "--model", root / "model.pt", "--data", root / "tones.sigmf-meta",
                               "--eps", "0.2", "--epochs", "2", "--batch-size", "16", "--random-shift",
                               "--seed", "5", "--out", out, "--quiet")
    assert code == 0, err
    p, info = perturbation_file.load(out)
    rec, check = recording.check_frames(recording.read(root / "tones"))
    model = model_file.load(root / "model.pt").module
    x = rec.model_input()
    # the library's computation, nothing more
    np.testing.assert_array_equal(p, universal.compute(model, x, rec.labels, eps=0.2, epochs=2, batch_size=16,
                                                       random_shift=True, seed=5))
    assert {key: info[key] for key in ("method", "norm", "eps", "random_shift", "model", "frames", "epochs",
                                       "seed", "precision", "frame_length", "mask_applied")} == {
        "method": "uap", "norm": "linf", "eps": 0.2, "random_shift": True, "model": "model.pt",
        "frames": len(rec), "epochs": 2, "seed": 5, "precision": "fp32", "frame_length": 128,
        "mask_applied": None}
    assert info["model_sha256"] == model_file.load(root / "model.pt").sha256
    assert info["frames_invalid"] == {"nan": 1, "inf": 0, "zero": 0}
    assert info["command"].startswith("shapft uap --model ") and "--random-shift" in info["command"]
    expected = {name: accuracy(model, frames, rec.labels) for name, frames in (
        ("clean", x), ("perturbed", universal.apply(x, p)), ("shifted", universal.apply(x, p, shift=True, seed=5)))}
    assert info["accuracy"] == expected
    lines = stdout.splitlines()
    assert lines[0] == (f"wrote {out}: UAP (linf) eps 0.2 (PSR -11.0 dB), computed over random shifts, "
                        f"from {len(rec)} frames")
    assert lines[1] == (f"accuracy on those frames: clean {100 * expected['clean']:.1f}%, with the perturbation "
                        f"{100 * expected['perturbed']:.1f}%, at a random shift per frame "
                        f"{100 * expected['shifted']:.1f}%")
    assert lines[2].startswith("--data: 1 invalid frame skipped (nan 1")


def test_the_command_attacks_a_masked_model_through_its_deletion(shapft, files, tmp_path):
    root, drop = files
    code, _, err = shapft("uap", "--model", root / "masked.pt", "--data", root / "tones.sigmf-meta",
                          "--psr-db", "-15", "--norm", "linf", "--epochs", "1", "--out", tmp_path / "m.npz",
                          "--quiet")
    assert code == 0, err
    p, info = perturbation_file.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(p[:, drop], 0)     # no gradient reaches deleted samples
    assert np.abs(np.delete(p, drop, axis=1)).max() > 0
    assert info["mask_applied"] == len(drop) and info["psr_db"] == pytest.approx(-15.0)


def test_the_command_refuses_bad_input_in_one_line(shapft, files, tmp_path):
    root, _ = files
    base = ("uap", "--model", root / "model.pt", "--data", root / "tones.sigmf-meta", "--quiet")
    cases = [
        (("--eps", "0.1", "--epochs", "0", "--out", tmp_path / "a.npz"), "--epochs: must be >= 1, got 0"),
        (("--eps", "-1", "--out", tmp_path / "a.npz"), "--eps: eps must be a finite number >= 0"),
        (("--eps", "0.1", "--step", "-1", "--out", tmp_path / "a.npz"), "--step: must be > 0"),
        (("--eps", "0.1", "--out", tmp_path), f"--out {tmp_path}: is a directory"),
        (("--eps", "0.1", "--invalid-frames", "error", "--out", tmp_path / "a.npz"), "--data .*frame 5 is invalid"),
    ]
    for extra, message in cases:
        code, _, err = shapft(*base, *extra)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert lines[0].startswith("shapft uap: error: ") and re.search(message, lines[0]), err
    assert not (tmp_path / "a.npz").exists()
    (tmp_path / "taken.npz").write_bytes(b"")
    code, _, err = shapft(*base, "--eps", "0.1", "--out", tmp_path / "taken.npz")
    assert code == 2 and "exists; pass --force" in err


def test_the_command_help_describes_it(capsys):
    # that every option has help: test_cli_input.MY_COMMANDS
    from gnuradio.shapft.cli import main
    with pytest.raises(SystemExit):
        main(["uap", "--help"])
    text = capsys.readouterr().out
    assert "universal adversarial perturbation" in text and "--random-shift" in text and "--invalid-frames" in text
