"""SHAP-FT fine-tuning and its baselines (finetune.py, `shapft finetune`): the
stratified train/validation split, the adversarial fine-tuning losses, and the
fine-tuned models the command exports for the shapft, random, direct and at_fgsm
methods, with and without adversarial fine-tuning (SHAP-AFT).

The fine-tuned models are checked against the library's fine-tuning on hand-deleted
frames.
"""
import re
import threading

import numpy as np
import pytest
import torch

from gnuradio.shapft.attacks.training import MixedATLoss
from gnuradio.shapft import attacks
from gnuradio.shapft.core import model_file, masks, recording
from gnuradio.shapft.learn import metrics, finetune
import shapft_testing
from gnuradio.shapft.core.radioml import CLASSES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)

ERROR_DROP = [17, 60, 77]            # the positions mask.json drops (test_masks.py's error-rule mask)
N_FT_PER_CLASS = 5                   # fine-tuning frames per class: 55 frames, 11 in val


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The original (small, untrained) CNN-LSTM, another one, a mask for the original
    and tiny-train recordings: 55 frames of 128 samples and 22 of 64."""
    root = tmp_path_factory.mktemp("finetune")
    shapft_testing.write_model(root / "original.pt")
    shapft_testing.write_model(root / "other.pt", seed=5)
    sha = model_file.load(root / "original.pt").sha256
    labels = np.repeat(np.arange(len(CLASSES)), N_FT_PER_CLASS)
    snr = np.tile([0.0, 10.0, 0.0, 10.0, 0.0], len(CLASSES))
    recording.write(root / "train", recording.Recording(shapft_testing.random_frames(len(labels), seed=1), labels, snr),
                    "fine-tuning frames")
    short_labels = np.repeat(np.arange(len(CLASSES)), 2)
    recording.write(root / "short", recording.Recording(shapft_testing.random_frames(22, frame_length=64, seed=2),
                                                        short_labels, np.zeros(22)), "64-sample frames")
    mask = masks.make_mask(ERROR_DROP, 128, "fgsm", 0.1, sha, frame_rule="error", frames_used=2)
    masks.save(root / "mask.json", mask)
    return root


# --- finetune.py and `shapft finetune` ------------------------------------------------------

def test_split_train_val_is_a_stratified_partition():
    labels = np.repeat(np.arange(4), 10)
    snr = np.tile(np.repeat([0.0, 10.0], 5), 4)
    train, val = finetune.split_train_val(labels, snr, seed=0)
    assert len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(40))
    for key in range(4):
        for s in (0.0, 10.0):
            members = np.flatnonzero((labels == key) & (snr == s))
            assert len(np.intersect1d(members, val)) == 1       # a fifth of each (class, SNR) cell
    again = finetune.split_train_val(labels, snr, seed=0)
    np.testing.assert_array_equal(again[1], val)
    assert not np.array_equal(finetune.split_train_val(labels, snr, seed=1)[1], val)


def test_finetune_refuses_incomplete_requests():
    original = shapft_testing.small_cnn_lstm()
    x, y, snr = np.zeros((10, 2, 128), np.float32), np.zeros(10, np.int64), np.zeros(10)
    with pytest.raises(ValueError, match="method 'pgd' is not one of shapft, random, direct, at_fgsm"):
        finetune.finetune(original, x, y, snr, "pgd")
    for method in ("shapft", "random"):
        with pytest.raises(ValueError, match=f"{method} fine-tuning needs the kept positions"):
            finetune.finetune(original, x, y, snr, method)
        with pytest.raises(ValueError, match="keep: leaves frames of 7 samples, but the cnn_lstm needs at least 8"):
            finetune.finetune(original, x, y, snr, method, keep=np.arange(7))
    with pytest.raises(ValueError, match=r"adversarial fine-tuning \(fgsm\) needs eps"):
        finetune.finetune(original, x, y, snr, "at_fgsm")
    with pytest.raises(ValueError, match="adversarial 'bim' is not one of fgsm, pgd"):
        finetune.finetune(original, x, y, snr, "direct", eps=0.1, adversarial="bim")
    with pytest.raises(ValueError, match="method at_fgsm is FGSM adversarial fine-tuning"):
        finetune.finetune(original, x, y, snr, "at_fgsm", eps=0.1, adversarial="pgd")


@pytest.mark.parametrize("method", ["direct", "at_fgsm"])
def test_finetune_stops_at_a_batch_once_asked(method):
    # how `shapft reproduce` stops its fine-tuning workers on Ctrl-C (studies.jobs)
    stop = threading.Event()
    stop.set()
    x, y, snr = np.zeros((40, 2, 128), np.float32), np.repeat(np.arange(4), 10), np.zeros(40)
    with pytest.raises(KeyboardInterrupt):
        finetune.finetune(shapft_testing.small_cnn_lstm(), x, y, snr, method, eps=0.1, stop=stop)

def test_at_fgsm_loss_is_half_clean_half_fgsm_against_the_model_in_training():
    model = shapft_testing.small_cnn_lstm(seed=2)
    x = torch.from_numpy(recording.to_model_input(shapft_testing.random_frames(6, seed=4)))
    y = torch.arange(6)
    model.train()
    x_adv = attacks.FGSM(model, eps=0.2)(x, y)             # crafted in eval mode, before the loss's
    assert torch.allclose((x_adv - x).abs(), torch.full_like(x, 0.2), atol=1e-6)   # forward moves BN stats
    assert model.training
    loss, logits = MixedATLoss(0.2)(model, x, y)
    assert model.training                                  # the attack restored train mode
    with torch.no_grad():
        both = model(torch.cat([x, x_adv]))                # train mode: batch norm over the 12 frames
        expected = torch.nn.functional.cross_entropy(both, torch.cat([y, y]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(logits, both[6:], atol=1e-5)


def test_pgd_aft_loss_is_half_clean_half_pgd_against_the_model_in_training():
    model = shapft_testing.small_cnn_lstm(seed=2)
    x = torch.from_numpy(recording.to_model_input(shapft_testing.random_frames(6, seed=4)))[:, :, :100]
    y = torch.arange(6)
    model.train()
    x_adv = attacks.PGD(model, eps=0.1, steps=3, seed=7, frame_length=100)(x, y)   # the same seed: the same start
    loss, _ = MixedATLoss(0.1, "pgd", steps=3, seed=7)(model, x, y)
    assert model.training
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(torch.cat([x, x_adv])), torch.cat([y, y]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert not torch.allclose(x_adv, attacks.FGSM(model, eps=0.1)(x, y))


def cnn_weights(path):
    return {k: v.clone() for k, v in model_file.load(path).module.state_dict().items()}


def by_hand(files, method, keep=None, eps=None, seed=0, adversarial=None):
    """finetune.finetune on the frames the test deletes itself: what the CLI must export."""
    loaded = model_file.load(files / "original.pt")
    data = recording.read(files / "train.sigmf-meta")
    x = data.model_input()
    model, result = finetune.finetune(finetune.cnn_lstm_from(loaded), x, data.labels, data.snr_db, method,
                                      keep=keep, eps=eps, seed=seed, epochs=1, patience=1, progress=False,
                                      adversarial=adversarial)
    return model.state_dict(), result


def assert_same_weights(state, path):
    exported = cnn_weights(path)
    assert set(exported) == set(state)
    for name, value in state.items():
        assert torch.equal(exported[name], value), name


def finetune_args(files, out, method, *extra):
    return ("finetune", "--model", files / "original.pt", "--data", files / "train.sigmf-meta", "--out", out,
            "--method", method, "--epochs", 1, "--patience", 1, "--threads", 1, "--quiet", *extra)


def test_cli_finetune_shapft_exports_the_mask_and_takes_128_minus_m(shapft, files, tmp_path):
    out = tmp_path / "shapft.pt"
    code, stdout, err = shapft(*finetune_args(files, out, "shapft", "--mask", files / "mask.json",
                                              "--evaluate", files / "train.sigmf-meta"))
    assert code == 0, err
    loaded = model_file.load(out)                      # load() runs the model on [1, 2, 125]
    mask = masks.load(files / "mask.json")
    assert loaded.frame_length == 125 and loaded.mask == mask
    assert model_file.full_frame_length_of(out) == 128
    assert masks.load(out) == mask
    assert loaded.metadata["training"]["method"] == "shapft"
    assert loaded.metadata["provenance"]["original_sha256"] == model_file.load(files / "original.pt").sha256
    weights = loaded.module.state_dict()
    assert tuple(weights["dense.weight"].shape) == (finetune.FINETUNE_DENSE_UNITS, 16)   # 32 -> 128
    assert tuple(weights["classifier.weight"].shape) == (len(CLASSES), finetune.FINETUNE_DENSE_UNITS)
    with torch.no_grad():
        assert loaded.module(torch.zeros(3, 2, 125)).shape == (3, len(CLASSES))
    assert "frames of 125 samples" in stdout

    # the exported network is the library's fine-tuning on frames without positions 17, 60, 77
    keep = np.setdiff1d(np.arange(128), ERROR_DROP)
    state, _ = by_hand(files, "shapft", keep=keep)
    assert_same_weights(state, out)
    other_state, _ = by_hand(files, "shapft", keep=np.setdiff1d(np.arange(128), [0, 1, 2]))
    assert not torch.equal(other_state["conv.weight"], state["conv.weight"])   # the positions matter

    # --evaluate classifies the recording after the same deletion
    data = recording.read(files / "train.sigmf-meta")
    predictions = metrics.predict_logits(loaded.module, data.model_input()[:, :, keep]).argmax(axis=1)
    accuracy = float(np.mean(predictions == data.labels))
    match = re.search(r"accuracy ([0-9.]+)% over 55 frames", stdout)
    assert match, stdout
    assert float(match.group(1)) == pytest.approx(100 * accuracy, abs=0.05)


def test_cli_finetune_random_deletes_as_many_other_positions(shapft, files, tmp_path):
    out = tmp_path / "random.pt"
    code, stdout, err = shapft(*finetune_args(files, out, "random", "--mask", files / "mask.json", "--seed", 4))
    assert code == 0, err
    loaded = model_file.load(out)
    drawn = masks.random_positions(3, 128, 4)
    assert loaded.mask["drop"] == drawn and loaded.mask["m"] == 3 and loaded.frame_length == 125
    assert loaded.mask["drop"] != ERROR_DROP
    assert loaded.mask["model_sha256"] == model_file.load(files / "original.pt").sha256
    assert "random (seed 4)" in loaded.mask["selection"]
    assert loaded.metadata["training"]["method"] == "random"
    state, _ = by_hand(files, "random", keep=np.setdiff1d(np.arange(128), drawn), seed=4)
    assert_same_weights(state, out)


def test_cli_finetune_direct_and_at_fgsm_keep_128_samples(shapft, files, tmp_path):
    code, _, err = shapft(*finetune_args(files, tmp_path / "direct.pt", "direct"))
    assert code == 0, err
    code, _, err = shapft(*finetune_args(files, tmp_path / "at.pt", "at_fgsm", "--eps", 0.05))
    assert code == 0, err
    for name, method in (("direct", "direct"), ("at", "at_fgsm")):
        loaded = model_file.load(tmp_path / f"{name}.pt")
        assert loaded.frame_length == 128 and loaded.mask is None
        assert loaded.metadata["training"]["method"] == method
        assert model_file.full_frame_length_of(tmp_path / f"{name}.pt") == 128
    direct, _ = by_hand(files, "direct")
    assert_same_weights(direct, tmp_path / "direct.pt")
    at_fgsm, _ = by_hand(files, "at_fgsm", eps=0.05)
    assert_same_weights(at_fgsm, tmp_path / "at.pt")
    assert not torch.equal(direct["conv.weight"], at_fgsm["conv.weight"])      # the FGSM half changes training


def test_cli_finetune_shap_aft_is_adversarial_fine_tuning_on_the_deleted_frames(shapft, files, tmp_path):
    out = tmp_path / "shapaft.pt"
    code, stdout, err = shapft(*finetune_args(files, out, "shapft", "--mask", files / "mask.json",
                                              "--adversarial", "fgsm", "--eps", 0.1))
    assert code == 0, err
    loaded = model_file.load(out)
    assert loaded.frame_length == 125 and loaded.mask == masks.load(files / "mask.json")
    training = loaded.metadata["training"]
    assert training["method"] == "shapft+at_fgsm"
    assert training["adversarial"]["attack"] == "fgsm" and training["adversarial"]["eps"] == 0.1
    assert "shapft+at_fgsm" in stdout
    keep = np.setdiff1d(np.arange(128), ERROR_DROP)
    state, _ = by_hand(files, "shapft", keep=keep, eps=0.1, adversarial="fgsm")
    assert_same_weights(state, out)
    plain, _ = by_hand(files, "shapft", keep=keep)
    assert not torch.equal(plain["conv.weight"], state["conv.weight"])   # the adversarial half changes training

    # direct + fgsm is at_fgsm, the same network and name
    code, _, err = shapft(*finetune_args(files, tmp_path / "direct_fgsm.pt", "direct", "--adversarial", "fgsm",
                                         "--eps", 0.05))
    assert code == 0, err
    at_fgsm, _ = by_hand(files, "at_fgsm", eps=0.05)
    assert_same_weights(at_fgsm, tmp_path / "direct_fgsm.pt")
    assert model_file.load(tmp_path / "direct_fgsm.pt").metadata["training"]["method"] == "at_fgsm"

    # random deletion with PGD fine-tuning
    code, _, err = shapft(*finetune_args(files, tmp_path / "random_pgd.pt", "random", "--mask", files / "mask.json",
                                         "--adversarial", "pgd", "--steps", 2, "--eps", 0.1, "--seed", 4))
    assert code == 0, err
    loaded = model_file.load(tmp_path / "random_pgd.pt")
    assert loaded.metadata["training"]["method"] == "random+at_pgd"
    assert loaded.metadata["training"]["adversarial"]["steps"] == 2
    assert loaded.mask["drop"] == masks.random_positions(3, 128, 4)


def test_cli_finetune_refuses_bad_input_in_one_line(shapft, files, tmp_path):
    out = tmp_path / "ft.pt"

    def refused(*args, expect):
        code, _, err = shapft(*args)
        assert code == 2, err
        assert expect in shapft_testing.one_line_error(err, "finetune")
        assert not out.exists()

    refused("finetune", "--model", tmp_path / "missing.pt", "--data", files / "train.sigmf-meta", "--out", out,
            "--method", "direct", expect="--model")
    refused("finetune", "--model", files / "original.pt", "--data", tmp_path / "missing.sigmf-meta", "--out",
            out, "--method", "direct", expect="no such file")
    refused(*finetune_args(files, out, "shapft"), expect="--method shapft needs --mask")
    refused(*finetune_args(files, out, "random"), expect="--method random needs --mask")
    refused(*finetune_args(files, out, "shapft", "--mask", tmp_path / "none.json"), expect="does not exist")
    refused(*finetune_args(files, out, "at_fgsm"), expect="--method at_fgsm needs --eps")
    refused(*finetune_args(files, out, "at_fgsm", "--eps", -0.1), expect="--eps: eps must be a finite number >= 0, got -0.1")
    refused(*finetune_args(files, out, "direct", "--epochs", 0), expect="epochs must be an integer >= 1")
    refused(*finetune_args(files, out, "direct", "--adversarial", "fgsm"), expect="--adversarial needs --eps")
    refused(*finetune_args(files, out, "at_fgsm", "--adversarial", "pgd", "--eps", 0.1),
            expect="--adversarial pgd contradicts --method at_fgsm")
    refused(*finetune_args(files, out, "direct", "--steps", 3), expect="--steps applies to --adversarial pgd only")
    refused(*finetune_args(files, out, "direct", "--adversarial", "pgd", "--steps", 0, "--eps", 0.1),
            expect="--steps: must be >= 1")
    args = list(finetune_args(files, out, "direct"))
    args[args.index("--data") + 1] = files / "short.sigmf-meta"
    refused(*args, expect="frames of 64 samples, but the model takes 128")
    short_mask = masks.make_mask([1, 2], 64, "fgsm", 0.1, None)
    masks.save(tmp_path / "short.json", short_mask)
    refused(*finetune_args(files, out, "shapft", "--mask", tmp_path / "short.json"),
            expect="mask frame_length 64 does not match the model's frame length 128")
    # a mask derived from another model: refused, accepted (with a one-line warning) with --force
    args = list(finetune_args(files, out, "shapft", "--mask", files / "mask.json"))
    args[args.index("--model") + 1] = files / "other.pt"
    refused(*args, expect="pass --force to use it anyway")
    code, _, err = shapft(*args, "--force")
    assert code == 0, err
    assert err.strip().startswith("shapft finetune: warning: the mask was derived from model sha256"), err
    assert len(err.strip().splitlines()) == 1, err
    assert model_file.load(out).frame_length == 125

    # an existing output is kept unless --force
    before = out.read_bytes()
    code, _, err = shapft(*finetune_args(files, out, "direct"))
    assert code == 2 and "exists; pass --force to overwrite" in shapft_testing.one_line_error(err, "finetune")
    assert out.read_bytes() == before
    code, _, err = shapft(*finetune_args(files, out, "direct", "--force"))
    assert code == 0, err
    assert model_file.load(out).frame_length == 128



@pytest.mark.parametrize("method", ["shapft", "random"])
def test_cli_finetune_refuses_a_mask_leaving_frames_shorter_than_the_convolution(shapft, files, tmp_path, method):
    # The CNN-LSTM's first layer is a convolution with kernels of 8 samples: a mask that
    # keeps 7 is refused before training (unchecked, torch fails inside conv1d); 8 trains.
    sha = model_file.load(files / "original.pt").sha256
    for kept in (7, 8):
        masks.save(tmp_path / f"keep{kept}.json", masks.make_mask(range(128 - kept), 128, "fgsm", 0.1, sha))
    out = tmp_path / "ft.pt"
    try:
        code, _, err = shapft(*finetune_args(files, out, method, "--mask", tmp_path / "keep7.json"))
    except RuntimeError as crash:
        pytest.fail(f"a mask keeping 7 samples crashes `shapft finetune` ({crash})")
    assert code == 2, err
    assert shapft_testing.one_line_error(err, "finetune") == (
        f"shapft finetune: error: --mask {tmp_path / 'keep7.json'}: leaves frames of 7 samples, but the "
        "cnn_lstm needs at least 8 (its convolution's kernel length)")
    assert not out.exists()
    code, stdout, err = shapft(*finetune_args(files, out, method, "--mask", tmp_path / "keep8.json"))
    assert code == 0, err
    assert model_file.load(out).frame_length == 8 and "frames of 8 samples" in stdout

@pytest.mark.parametrize("method", ["shapft", "direct"])
def test_cli_finetune_refuses_an_evaluate_recording_of_another_frame_length(shapft, files, tmp_path, method):
    # The --evaluate recording's frame length is checked before training: unchecked,
    # shapft/random would index 64-sample frames with the kept positions (IndexError)
    # and direct/at_fgsm would classify them, after writing --out.
    out = tmp_path / "ft.pt"
    args = finetune_args(files, out, method, "--mask", files / "mask.json", "--evaluate", files / "short.sigmf-meta")
    try:
        code, stdout, err = shapft(*args)
    except IndexError as crash:
        pytest.fail(f"`shapft finetune --method {method} --evaluate <64-sample frames>` crashes with "
                    f"IndexError ({crash}) instead of exit code 2 and a one-line error")
    assert code == 2, f"`shapft finetune --method {method} --evaluate <64-sample frames>` exits {code} " \
                      f"and prints {stdout.strip()!r} instead of refusing frames the model does not take"
    assert "64" in shapft_testing.one_line_error(err, "finetune")
    assert not out.exists()


def test_cli_finetune_refuses_a_transformer(shapft, files, tmp_path):
    shapft_testing.write_model(tmp_path / "transformer.pt", arch="transformer_compact")
    args = list(finetune_args(files, tmp_path / "ft.pt", "direct"))
    args[args.index("--model") + 1] = tmp_path / "transformer.pt"
    code, _, err = shapft(*args)
    assert code == 2 and "fine-tunes a cnn_lstm, not a transformer_compact" in shapft_testing.one_line_error(err, "finetune")
