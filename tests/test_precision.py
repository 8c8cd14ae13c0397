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
