"""ONNX model files: `shapft export --format onnx` on the shipped models, the round trip
against the TorchScript logits in ONNX Runtime, the metadata carried over, and what is
refused (a mismatching export, files that are not ONNX model files, ONNX files where a
TorchScript one is needed)."""
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import shapft_testing
from gnuradio.shapft.core import model_file, onnx_file, shipped

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)

SHIPPED = ["cnn_lstm.pt", "cnn_lstm_shapft_eps0.1.pt", "transformer_compact_attention_ard.pt",
           "transformer_large_pgd_at.pt"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{shipped model name: the ONNX file `shapft export` wrote for it}."""
    from gnuradio.shapft.cli import main
    root = tmp_path_factory.mktemp("onnx")
    paths = {}
    for name in SHIPPED:
        paths[name] = root / name.replace(".pt", ".onnx")
        assert main(["export", "--format", "onnx", "--model", str(shipped.model(name)), "--out", str(paths[name])]) == 0
    return paths


@pytest.mark.parametrize("name", SHIPPED)
def test_export_round_trip_matches_torchscript_logits(exported, name):
    torchscript = model_file.load(shipped.model(name))
    runtime = onnx_file.load(exported[name])
    # other frames than the export's check, at batch sizes it did not use
    x = torch.from_numpy(onnx_file.random_model_input(100, torchscript.frame_length, seed=7))
    with torch.no_grad():
        for batch in (x, x[:7], x[7:8]):
            expected, got = torchscript.module(batch), runtime.module(batch)
            assert got.shape == expected.shape
            assert float((got - expected).abs().max()) <= 1e-4
            assert torch.equal(got.argmax(1), expected.argmax(1))


@pytest.mark.parametrize("name", SHIPPED)
def test_export_carries_the_metadata_opset_and_a_dynamic_batch(exported, name):
    torchscript = model_file.load(shipped.model(name))
    runtime = onnx_file.load(exported[name])
    assert runtime.metadata == torchscript.metadata
    assert model_file.read_metadata(exported[name]) == torchscript.metadata   # what GRC reads
    assert (runtime.frame_length, runtime.full_frame_length, runtime.mask) == \
        (torchscript.frame_length, torchscript.full_frame_length, torchscript.mask)
    proto = onnx.load(str(exported[name]))
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", onnx_file.OPSET)]
    (graph_input,), (graph_output,) = proto.graph.input, proto.graph.output
    assert graph_input.name == "frames" and graph_output.name == "logits"
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 2, torchscript.frame_length]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    record = onnx_file.read_export_record(exported[name])
    assert record["opset"] == onnx_file.OPSET
    assert record["source"] == name and record["source_sha256"] == torchscript.sha256
    assert 0 <= record["check"]["max_abs_logit_error"] <= 1e-4 and record["check"]["batch_sizes"] == [1, 32]


def test_export_prints_the_check(tmp_path, shapft):
    code, out, err = shapft("export", "--format", "onnx", "--model", shipped.model("cnn_lstm.pt"),
                            "--out", tmp_path / "m.onnx", "--frames", 5, "--seed", 3)
    assert (code, err) == (0, "")
    assert out.startswith(f"wrote {tmp_path / 'm.onnx'}: ONNX opset 17, cnn_lstm, 11 classes, frames of 128; "
                          "logits within ")
    assert out.rstrip().endswith("of TorchScript's on 5 random frames (tolerance 0.0001)")
    assert onnx_file.read_export_record(tmp_path / "m.onnx")["check"]["seed"] == 3


def test_a_mismatching_export_is_measured_and_refused(tmp_path, shapft):
    # Another network's ONNX graph against this network's TorchScript: the check sees it.
    for seed in (0, 1):
        shapft_testing.write_model(tmp_path / f"m{seed}.pt", seed=seed)
    other = onnx_file.export_graph(model_file.load(tmp_path / "m1.pt"))
    mine = model_file.load(tmp_path / "m0.pt")
    x = onnx_file.random_model_input(8, 128, seed=0)
    assert onnx_file.max_abs_error(mine.module, onnx_file.export_graph(mine), x) <= 1e-4
    assert onnx_file.max_abs_error(mine.module, other, x) > 1e-2
    with pytest.raises(ValueError, match="^ONNX Runtime cannot run the ONNX model: "):
        onnx_file.max_abs_error(mine.module, b"not an ONNX model", x)
    # Any difference above the tolerance refuses the file: nothing is written.
    code, out, err = shapft("export", "--format", "onnx", "--model", tmp_path / "m0.pt",
                            "--out", tmp_path / "m0.onnx", "--tolerance", 0)
    line = shapft_testing.one_line_error(err, "export")
    assert code == 2 and out == ""
    assert "--model: model file" in line and "the ONNX export's logits differ from TorchScript's by up to" in line
    assert line.endswith("on 32 random frames (tolerance 0); nothing written")
    assert not (tmp_path / "m0.onnx").exists()


def test_bad_export_input_is_refused_in_one_line(tmp_path, exported, shapft):
    model = shipped.model("cnn_lstm.pt")
    (tmp_path / "taken.onnx").write_bytes(b"already here")
    cases = [
        (["--model", exported["cnn_lstm.pt"], "--out", tmp_path / "a.onnx"],
         "--model: model file .*cnn_lstm.onnx is an ONNX model, which only classifier_sink runs; "
         r"this needs the TorchScript model file \(.pt\) it was exported from"),
        (["--model", tmp_path / "missing.pt", "--out", tmp_path / "a.onnx"], "--model .*missing.pt: no such file"),
        (["--model", shipped.model("attack_detector.pt"), "--out", tmp_path / "a.onnx"],
         "--model: .* is an attack detector, not a classifier"),
        (["--model", model, "--out", tmp_path / "a.pt"], r"--out .*a.pt: an ONNX model file's name ends in .onnx"),
        (["--model", model, "--out", tmp_path / "taken.onnx"], "--out .*taken.onnx exists; pass --force"),
        (["--model", model, "--out", tmp_path], "--out .*: an ONNX model file's name ends in .onnx"),
        (["--model", model, "--out", tmp_path / "a.onnx", "--frames", 0], "--frames: must be >= 1, got 0"),
        (["--model", model, "--out", tmp_path / "a.onnx", "--tolerance", -1], "--tolerance: must be >= 0"),
        (["--model", model, "--out", tmp_path / "a.onnx", "--tolerance", "nan"], "--tolerance: must be >= 0"),
    ]
    for options, message in cases:
        code, _, err = shapft("export", "--format", "onnx", *options)
        assert code == 2
        assert re.search(message, shapft_testing.one_line_error(err, "export")), err
    assert not (tmp_path / "a.onnx").exists()
    assert (tmp_path / "taken.onnx").read_bytes() == b"already here"


def test_files_that_are_not_onnx_model_files_are_refused(tmp_path, exported):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07 not a protobuf at all \xff\xff")
    empty = tmp_path / "empty.onnx"   # protobuf reads it as an empty model
    empty.write_bytes(b"")
    torchscript_named_onnx = tmp_path / "renamed.onnx"
    torchscript_named_onnx.write_bytes(Path(shipped.model("cnn_lstm.pt")).read_bytes())
    for path in (garbage, empty, torchscript_named_onnx):
        for read in (onnx_file.load, model_file.read_metadata):
            with pytest.raises(ValueError, match=f"^model file {path} is not an ONNX model"):
                read(path)
    # A plain ONNX export, without the model file's metadata.
    bare = onnx.load(str(exported["cnn_lstm.pt"]))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ValueError, match="carries no shapft.json metadata; export it with `shapft export"):
        onnx_file.load(tmp_path / "bare.onnx")
    # Metadata that says something else than the graph does: the forward check catches it.
    wrong = onnx.load(str(exported["cnn_lstm.pt"]))
    metadata = dict(model_file.read_metadata(exported["cnn_lstm.pt"]), frame_length=100)
    onnx.helper.set_model_props(wrong, {model_file.METADATA_NAME: json.dumps(metadata)})
    onnx.save(wrong, str(tmp_path / "wrong.onnx"))
    with pytest.raises(ValueError, match=r"forward fails on \[1, 2, 100\] input"):
        onnx_file.load(tmp_path / "wrong.onnx")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        onnx_file.load(tmp_path / "missing.onnx")


def test_random_model_input_has_unit_power_frames():
    x = onnx_file.random_model_input(16, 40, seed=2)
    assert x.shape == (16, 2, 40) and x.dtype == np.float32
    np.testing.assert_allclose((x ** 2).sum(axis=1).mean(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(x, onnx_file.random_model_input(16, 40, seed=2))
