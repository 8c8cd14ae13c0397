"""ONNX model files (`.onnx`): a model file (core.model_file) exported for ONNX Runtime
(docs/formats.md).

The graph is the TorchScript model's forward at ONNX opset OPSET, always float32: input
`frames` [batch, 2, L], output `logits` [batch, C], the batch dimension dynamic. The
ONNX model's metadata_props carry the model file's metadata unchanged under
`shapft.json`, and under `shapft-export.json` where it was exported from and how the
export was checked. Export runs torch's TorchScript-based exporter and refuses a graph
whose logits, in ONNX Runtime, differ from the TorchScript model's by more than
TOLERANCE on random frames. classifier_sink runs these files; what takes gradients
(attacks, SHAP, training) needs the TorchScript file. Reading the metadata needs the
`onnx` package, not torch.
"""
import json
import warnings
from pathlib import Path

import numpy as np

from . import artifacts, model_file

SUFFIX = ".onnx"
OPSET = 17
EXPORT_NAME = "shapft-export.json"
TOLERANCE = 1e-4          # largest |logit difference| from the TorchScript model an export may have
CHECK_FRAMES = 32
EXPORTER = "torch.onnx.export (TorchScript-based, dynamo=False)"


def is_onnx_path(path):
    """Whether `path` names an ONNX model file (by its suffix, .onnx)."""
    return Path(path).suffix.lower() == SUFFIX


def read_metadata(path):
    """The model-file metadata (`shapft.json`) an ONNX model file carries, read without torch."""
    return _records(_read_proto(path), path)[model_file.METADATA_NAME]


def read_export_record(path):
    """How the ONNX model file was exported and checked (`shapft-export.json`; None
    in a file without it)."""
    return _records(_read_proto(path), path).get(EXPORT_NAME)


def load(path):
    """Load and check an ONNX model file as a model_file.LoadedModel whose module runs it in
    ONNX Runtime (models.onnx_runtime); any problem is a ValueError naming the file."""
    from ..models.onnx_runtime import OnnxRuntimeClassifier
    path = Path(path)
    proto = _read_proto(path)
    metadata = _records(proto, path)[model_file.METADATA_NAME]
    try:
        module = OnnxRuntimeClassifier(proto.SerializeToString())
    except Exception as err:   # onnxruntime's own exception types, with long texts
        raise ValueError(f"model file {path}: ONNX Runtime cannot run it: {_first_line(err)}") from None
    return model_file.checked_model(module, metadata, path)


def export(loaded, out, frames=CHECK_FRAMES, seed=0, tolerance=TOLERANCE):
    """Export a loaded model file (model_file.load) to the ONNX model file `out`, after checking its
    logits in ONNX Runtime against the TorchScript model's on `frames` random unit-power
    frames drawn from `seed` (all in one batch, and the first alone: the batch dimension
    is dynamic). A larger difference than `tolerance` is refused and nothing is written.
    Returns the export record written into the file (EXPORT_NAME)."""
    import onnx
    if frames < 1:
        raise ValueError(f"frames: must be >= 1, got {frames}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance: must be >= 0, got {tolerance}")
    graph = export_graph(loaded)
    try:
        error = max_abs_error(loaded.module, graph, random_model_input(frames, loaded.frame_length, seed))
    except ValueError as err:
        raise ValueError(f"model file {loaded.path}: {err}; nothing written") from None
    if not error <= tolerance:
        raise ValueError(f"model file {loaded.path}: the ONNX export's logits differ from TorchScript's by up to "
                         f"{error:.3g} on {frames} random frames (tolerance {tolerance:g}); nothing written")
    record = {"opset": OPSET, "exporter": EXPORTER, "source": loaded.path.name, "source_sha256": loaded.sha256,
              "check": {"frames": frames, "seed": seed, "batch_sizes": sorted({frames, 1}),
                        "max_abs_logit_error": error, "tolerance": tolerance},
              "versions": _versions()}
    proto = onnx.load_model_from_string(graph)
    onnx.helper.set_model_props(proto, {model_file.METADATA_NAME: json.dumps(loaded.metadata, indent=2),
                                        EXPORT_NAME: json.dumps(record, indent=2)})
    artifacts.write_bytes(out, proto.SerializeToString())
    return record


def random_model_input(n, frame_length, seed):
    """Model input [n, 2, frame_length] of unit-power complex Gaussian frames (the units
    the models take), drawn from `seed`."""
    from .radioml_import import normalise_power
    from .recording import to_model_input
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((n, frame_length)) + 1j * rng.standard_normal((n, frame_length))
    return to_model_input(normalise_power(frames))


def max_abs_error(module, onnx_model, x):
    """The largest |logit difference| between a TorchScript module and an ONNX model (path
    or bytes) in ONNX Runtime on model input x (float32 [N, 2, L]): all N frames in one
    batch, and the first alone. NaN when either returns NaN; a ValueError when ONNX
    Runtime cannot run the model or the two return logits of different shapes."""
    import torch
    from ..models.onnx_runtime import OnnxRuntimeClassifier
    x = torch.from_numpy(x)
    batches = (x, x[:1])
    with torch.no_grad():
        try:
            runtime = OnnxRuntimeClassifier(onnx_model)
            pairs = [(module(batch), runtime(batch)) for batch in batches]
        except Exception as err:   # onnxruntime's own exception types, with long texts
            raise ValueError(f"ONNX Runtime cannot run the ONNX model: {_first_line(err)}") from None
    errors = []
    for batch, (expected, got) in zip(batches, pairs):
        if expected.shape != got.shape:
            raise ValueError(f"the ONNX model returns {tuple(got.shape)} for {tuple(batch.shape)} input, "
                             f"TorchScript {tuple(expected.shape)}")
        errors.append((expected - got).abs().max())
    return float(torch.stack(errors).max())   # torch's max keeps a NaN


def export_graph(loaded):
    """The ONNX model (bytes) of a LoadedModel's TorchScript module, at OPSET, float32."""
    import io

    import torch

    from ..models.onnx_runtime import INPUT_NAME, OUTPUT_NAME
    buffer = io.BytesIO()
    probe = torch.zeros(2, 2, loaded.frame_length)
    with warnings.catch_warnings():
        # Noise here: the TorchScript-based exporter is marked deprecated in favour of
        # torch.export, which takes Python modules, not the TorchScript our model files
        # hold; a ScriptModule has no Python signature for it to inspect; and the LSTM
        # warning that batch sizes other than the traced one may fail is for LSTMs given
        # initial states (ours start from zeros), and export checks other batch sizes.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"no signature found")
        warnings.filterwarnings("ignore", message=r"Exporting a model to ONNX with a batch_size other than 1")
        try:
            torch.onnx.export(loaded.module, (probe,), buffer, dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        except Exception as err:   # the exporter raises many types, with long texts
            raise ValueError(f"model file {loaded.path}: cannot be exported to ONNX: {_first_line(err)}") from None
    return buffer.getvalue()


def _read_proto(path):
    import onnx
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(proto)   # protobuf parses some non-ONNX bytes (an empty file) as a model
        return proto
    except Exception as err:   # protobuf's DecodeError and onnx's own
        raise ValueError(f"model file {path} is not an ONNX model (corrupt or wrong format): "
                         f"{_first_line(err)}") from None


def _records(proto, path):
    """Our JSON objects among an ONNX model's metadata_props, by key; shapft.json is required."""
    props = {prop.key: prop.value for prop in proto.metadata_props}
    if model_file.METADATA_NAME not in props:
        raise ValueError(f"model file {path} carries no {model_file.METADATA_NAME} metadata; "
                         "export it with `shapft export --format onnx`")
    records = {}
    for key in (model_file.METADATA_NAME, EXPORT_NAME):
        if key not in props:
            continue
        try:
            records[key] = json.loads(props[key])
        except json.JSONDecodeError as err:
            raise ValueError(f"model file {path}: {key} is not valid JSON ({err})") from None
        if not isinstance(records[key], dict):
            raise ValueError(f"model file {path}: {key} is not a JSON object")
    return records


def _versions():
    import onnx
    import onnxruntime
    import torch

    from .. import __version__
    return {"gr-shapft": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def _first_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
