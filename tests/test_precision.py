"""bfloat16 autocast: the same model in fp32 and bf16 agrees on the predicted class and
on the direction of FGSM's perturbation; the precision rule ('auto' = bf16 only where
the hardware has it) and bad values."""
import warnings

import pytest
import torch

from gnuradio.shapft import attacks
from gnuradio.shapft.core import model_file, shipped
from gnuradio.shapft.models import precision
from gnuradio.shapft.studies import generate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def model():
    return model_file.load(shipped.model("cnn_lstm.pt")).module


@pytest.fixture(scope="module")
def frames():
    """Generated frames of every class at 0 to 18 dB, with their labels."""
    counts = generate.uniform_counts(8, snrs_db=(0, 6, 12, 18))
    data = generate.generate_split(counts, seed=5, split="precision-test", workers=1, progress=False)
    return torch.from_numpy(data.model_input()), torch.from_numpy(data.labels)


def predictions(model, x, mode):
    with torch.no_grad(), precision.autocast(mode):
        logits = model(x)
    assert logits.dtype == (torch.bfloat16 if precision.resolve(mode) == "bf16" else torch.float32)
    return logits.float().argmax(dim=1)


def test_bf16_predicts_the_same_classes_as_fp32(model, frames):
    x, _ = frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # emulated bf16 warns; it must still agree
        agree = (predictions(model, x, "fp32") == predictions(model, x, "bf16")).float().mean().item()
    assert agree >= 0.99, f"fp32 and bf16 agree on {100 * agree:.1f}% of {len(x)} frames"


def test_bf16_fgsm_perturbs_in_the_same_direction_as_fp32(model, frames):
    x, y = frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fp32 = attacks.FGSM(model, eps=0.05)(x, y) - x
        bf16 = attacks.FGSM(model, eps=0.05, precision="bf16")(x, y) - x
    assert bf16.dtype == torch.float32
    assert torch.allclose(bf16.abs(), torch.full_like(bf16, 0.05), atol=1e-6)    # still exactly eps
    same_sign = (torch.sign(fp32) == torch.sign(bf16)).float().mean().item()
    assert same_sign >= 0.98, f"perturbation signs agree on {100 * same_sign:.2f}% of components"


def test_a_wrong_cast_would_be_caught(model, frames):
    """The agreement tests can fail: inputs rounded to 4 significant bits disagree."""
    x, _ = frames
    coarse = torch.round(x * 4) / 4
    agree = (predictions(model, x, "fp32") == predictions(model, coarse, "fp32")).float().mean().item()
    assert agree < 0.99


def test_auto_is_bf16_exactly_where_the_hardware_has_it():
    assert precision.resolve("auto") == ("bf16" if precision.native_bf16("cpu") else "fp32")
    assert precision.resolve("fp32") == "fp32"
    assert precision.native_bf16("mps") is False


def test_bf16_without_native_support_warns_once(monkeypatch):
    precision._warn_emulated.cache_clear()
    monkeypatch.setattr(precision, "native_bf16", lambda device_type="cpu": False)
    with pytest.warns(RuntimeWarning, match="no native bfloat16"):
        assert precision.resolve("bf16") == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert precision.resolve("bf16") == "bf16"    # the second time: no warning
    assert precision.resolve("auto") == "fp32"


@pytest.mark.parametrize("bad", ["fp16", "BF16", None, 16])
def test_bad_precision_refused_naming_the_parameter(bad):
    with pytest.raises(ValueError, match="precision"):
        precision.resolve(bad)
    with pytest.raises(ValueError, match="precision"):
        attacks.make("fgsm", torch.nn.Identity(), eps=0.1, precision=bad)


def test_commands_take_a_precision_and_record_it(shapft, tmp_path):
    import json
    from gnuradio.shapft.core import recording
    import shapft_testing
    for split, seed in (("train", 1), ("val", 2), ("test", 3)):
        recording.write(tmp_path / "data" / split, shapft_testing.tone_recording(4, [0, 10], seed=seed), split)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        code, out, err = shapft("train", "--arch", "cnn_lstm", "--data", tmp_path / "data", "--out",
                                tmp_path / "m.pt", "--epochs", 1, "--precision", "bf16", "--quiet")
        assert code == 0, err
        assert model_file.read_metadata(tmp_path / "m.pt")["training"]["precision"] == "bf16"
        code, out, err = shapft("evaluate", "--model", tmp_path / "m.pt", "--data", tmp_path / "data" / "test.sigmf-meta",
                                "--attacks", "fgsm:0.05", "--precision", "bf16", "--json", tmp_path / "e.json", "--quiet")
        assert code == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["precision"] == "bf16" and result["attacks"][0]["precision"] == "bf16"
    model = model_file.load(tmp_path / "m.pt")          # trained in bf16, runs in fp32
    assert model.module(torch.zeros(2, 2, 128)).dtype == torch.float32
    with pytest.raises(SystemExit) as refused:       # argparse: a choice outside fp32, bf16, auto
        shapft("evaluate", "--model", tmp_path / "m.pt", "--data", tmp_path / "data" / "test.sigmf-meta",
               "--precision", "fp16")
    assert refused.value.code == 2


def test_training_under_bf16_learns_as_fp32_does(frames):
    """bf16 training follows fp32 at the same seed. It once did not learn at all: autocast
    was entered around a whole epoch, and autocast reuses the bf16 copies of the weights
    it casts until its region ends, so every forward pass saw the first batch's weights."""
    from gnuradio.shapft import models
    from gnuradio.shapft.learn import training
    x, y = frames
    losses = {}
    for mode in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = models.build("transformer_compact", frame_length=x.shape[-1])
        config = training.TrainConfig(epochs=8, batch_size=32, lr=3e-3, patience=100, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # emulated bf16 warns
            result = training.fit(model, (x, y), (x, y), config, progress=False, precision=mode)
        losses[mode] = [epoch["train_loss"] for epoch in result.history]
    assert losses["fp32"][-1] < 0.8 * losses["fp32"][0], losses   # the recipe learns on these frames
    assert losses["bf16"][-1] < 0.8 * losses["bf16"][0], losses
    assert abs(losses["bf16"][-1] - losses["fp32"][-1]) < 0.15 * losses["fp32"][-1], losses
