"""Model architectures and TorchScript model files (models/, model_file.py)."""
import io
import json
import zipfile

import pytest
import torch
from torch import nn

from gnuradio.shapft.core import model_file
from gnuradio.shapft import models
from gnuradio.shapft.models import CnnLstm, transformer_compact, transformer_large
from gnuradio.shapft.core.radioml import CLASSES

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated:DeprecationWarning")
torch.set_num_threads(1)


def metadata_for(model, arch, frame_length=128):
    return model_file.build_metadata(model, arch, frame_length, {"command": "test", "seed": 3},
                                     training={"best_epoch": 7})


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_torchscript_round_trip_gives_the_same_logits(tmp_path, arch):
    torch.manual_seed(0)
    model = models.build(arch).eval()
    path = model_file.save(model, tmp_path / f"{arch}.pt", metadata_for(model, arch))
    loaded = model_file.load(path)
    x = torch.randn(5, 2, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), model(x), rtol=1e-5, atol=1e-5)
    assert loaded.arch == arch and loaded.classes == list(CLASSES) and loaded.frame_length == 128
    assert loaded.metadata["parameters"] == models.parameter_count(model)
    assert loaded.metadata["provenance"] == {"command": "test", "seed": 3}
    assert loaded.metadata["training"] == {"best_epoch": 7}
    assert loaded.has_attention() == arch.startswith("transformer")
    assert len(loaded.sha256) == 64


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    torch.manual_seed(0)
    model = transformer_compact()
    good = model_file.save(model, tmp_path / "good.pt", metadata_for(model, "transformer_compact"))

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        model_file.load(garbage)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pt"):
        model_file.load(truncated)

    bare = tmp_path / "bare.pt"
    torch.jit.save(torch.jit.script(model.eval()), str(bare))
    with pytest.raises(ValueError, match="no shapft.json metadata"):
        model_file.load(bare)

    with pytest.raises(FileNotFoundError, match="does not exist"):
        model_file.load(tmp_path / "missing.pt")


def test_metadata_lacking_keys_is_refused(tmp_path):
    model = transformer_compact()
    with pytest.raises(ValueError, match="lacks"):
        model_file.save(model, tmp_path / "m.pt", {"arch": "transformer_compact"})
    path = tmp_path / "no_frame_length.pt"
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model.eval()), buffer,
                   _extra_files={model_file.METADATA_NAME: json.dumps({"arch": "x", "classes": list(CLASSES)})})
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="frame_length"):
        model_file.load(path)
    assert zipfile.is_zipfile(path)


class FiveLogits(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=2).repeat(1, 3)[:, :5]


def test_models_with_the_wrong_output_shape_are_refused(tmp_path):
    model = FiveLogits()
    with pytest.raises(ValueError, match=r"expected \(2, 11\)"):
        model_file.save(model, tmp_path / "five.pt", metadata_for(model, "five"))
    path = tmp_path / "five_written_by_hand.pt"
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer,
                   _extra_files={model_file.METADATA_NAME: json.dumps(metadata_for(model, "five"))})
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match=r"expected \(1, 11\) logits"):
        model_file.load(path)


@pytest.mark.parametrize("length", [128, 55, 8])
def test_cnn_lstm_takes_shorter_frames(length):
    model = CnnLstm().eval()
    with torch.no_grad():
        assert model(torch.randn(3, 2, length)).shape == (3, 11)


def test_cnn_lstm_dense_head_can_be_replaced_keeping_features():
    model = CnnLstm()
    narrow = model.with_dense_units(128)
    assert narrow.dense.out_features == 128
    torch.testing.assert_close(narrow.conv.weight, model.conv.weight)
    torch.testing.assert_close(narrow.lstm.weight_hh_l0, model.lstm.weight_hh_l0)


@pytest.mark.parametrize("build, depth, heads", [(transformer_compact, 2, 4), (transformer_large, 6, 8)])
def test_attention_maps_have_the_documented_shapes_and_are_distributions(build, depth, heads):
    torch.manual_seed(0)
    model = torch.jit.script(build().eval())
    with torch.no_grad():
        logits, maps = model.forward_with_attention(torch.randn(3, 2, 128))
    tokens = 1 + 128 // 8
    assert logits.shape == (3, 11) and len(maps) == depth
    for attention in maps:
        assert attention.shape == (3, heads, tokens, tokens)
        assert torch.all(attention >= 0)
        torch.testing.assert_close(attention.sum(dim=-1), torch.ones(3, heads, tokens))


def test_compact_transformer_is_at_most_a_tenth_of_the_large_one():
    compact = models.parameter_count(transformer_compact())
    large = models.parameter_count(transformer_large())
    assert compact * 10 <= large, (compact, large)


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        models.build("resnet")
