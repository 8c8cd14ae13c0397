"""TorchScript model files that carry their own metadata (docs/formats.md).

A model file is a TorchScript archive whose `forward` takes float32 [B, 2, L] and
returns logits [B, C], with a JSON extra file `shapft.json` inside: class names,
frame length, input convention, architecture, parameter count, the negative-point
mask the model expects (key `mask`, or null) and training provenance. A block or
command needs nothing but the file. Loading runs TorchScript only; nothing is
unpickled.
"""
import contextlib
import dataclasses
import io
import json
import warnings
import zipfile
from pathlib import Path

from . import artifacts
from .radioml import CLASSES, SAMPLE_RATE_HZ

METADATA_NAME = "shapft.json"
ARCHITECTURES = ("cnn_lstm", "transformer_compact", "transformer_large")   # models.build makes each
FORMAT = "shapft-model/1"
DETECTOR_FORMAT = "shapft-detector/1"   # core.detector_file
INPUT_CONVENTION = "float32 [B, 2, L]: I then Q, unit average power per complex sample"
OUTPUT_CONVENTION = "logits [B, C] (no softmax)"


@dataclasses.dataclass
class LoadedArchive:
    """A loaded gr-shapft TorchScript archive: a model file, or a detector file
    (core.detector_file)."""
    module: object   # torch.jit.ScriptModule
    metadata: dict
    sha256: str
    path: Path

    @property
    def frame_length(self):
        """Length of the frames `forward` takes (128 - m for a SHAP-FT model)."""
        return int(self.metadata["frame_length"])

    def to(self, device):
        """This archive with its module moved to `device` (a torch.device; files load on
        the CPU). Returns self."""
        self.module.to(device)
        return self


@dataclasses.dataclass
class LoadedModel(LoadedArchive):
    """A loaded model file: forward returns logits."""

    @property
    def full_frame_length(self):
        """Length of the frames before any deletion (the mask's frame length, else frame_length)."""
        return full_frame_length(self.metadata)

    @property
    def classes(self):
        return list(self.metadata["classes"])

    @property
    def mask(self):
        return self.metadata.get("mask")

    @property
    def arch(self):
        return self.metadata["arch"]

    def has_attention(self):
        return hasattr(self.module, "forward_with_attention")


@contextlib.contextmanager
def _quiet_torchscript():
    # torch 2.13 marks TorchScript deprecated on every call; our file format is
    # TorchScript by design (docs/formats.md), so the warning is noise here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit")
        yield


def build_metadata(model, arch, frame_length, provenance, mask=None, training=None, classes=CLASSES):
    return {
        "format": FORMAT,
        "arch": arch,
        "classes": list(classes),
        "frame_length": int(frame_length),
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "input": INPUT_CONVENTION,
        "output": OUTPUT_CONVENTION,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "mask": mask,
        "provenance": provenance,
        "training": training or {},
    }


def save(model, path, metadata):
    """Script `model` (in eval mode) and write it atomically with its metadata."""
    missing = {"arch", "classes", "frame_length"} - set(metadata)
    if missing:
        raise ValueError(f"model metadata lacks {sorted(missing)}")
    expected = (2, len(metadata["classes"]))

    def check(output):
        if tuple(output.shape) != expected:
            raise ValueError(f"model returns {tuple(output.shape)} for [2, 2, {metadata['frame_length']}] "
                             f"input; expected {expected}")

    return save_scripted(model, path, metadata, check)


def save_scripted(model, path, metadata, check):
    """Script `model` (in eval mode), check(its output for two zero frames of the
    metadata's frame_length), and write it atomically with `metadata` inside. A model on
    another device is written from a CPU copy, so the file loads on any machine."""
    import copy
    import torch
    from ..models import device as model_device
    if model_device.of(model).type != "cpu":
        model = copy.deepcopy(model).cpu()
    was_training = model.training
    model.eval()
    try:
        with _quiet_torchscript():
            scripted = model if isinstance(model, torch.jit.ScriptModule) else torch.jit.script(model)
        probe = torch.zeros(2, 2, int(metadata["frame_length"]))
        with torch.no_grad():
            check(scripted(probe))
        buffer = io.BytesIO()
        with _quiet_torchscript():
            torch.jit.save(scripted, buffer, _extra_files={METADATA_NAME: json.dumps(metadata, indent=2)})
    finally:
        model.train(was_training)
    artifacts.write_bytes(path, buffer.getvalue())
    return Path(path)


def export(model, path, arch, frame_length, provenance, mask=None, training=None):
    """Write `model` as a model file with its metadata (build_metadata, then save)."""
    return save(model, path, build_metadata(model, arch, frame_length, provenance, mask=mask, training=training))


def read_metadata(path):
    """The metadata of a model file, read from the archive without loading torch code:
    what GNU Radio Companion needs to size a block's ports. An ONNX model file's
    (core.onnx_file) is the same metadata."""
    from . import onnx_file   # here: onnx_file imports this module
    if onnx_file.is_onnx_path(path):
        return onnx_file.read_metadata(path)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"model file {path} is not a TorchScript archive (corrupt or wrong format)")
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_NAME}")]
        if not names:
            raise ValueError(f"model file {path} carries no {METADATA_NAME} metadata")
        return json.loads(archive.read(names[0]))


def frame_length_of(path):
    """Length of the frames the model classifies (classifier_sink's vector length)."""
    return int(read_metadata(path)["frame_length"])


def full_frame_length(metadata):
    """Length of the frames before any deletion: the mask's frame length for a SHAP-FT
    model, else the model's (fgsm_injector's vector length)."""
    mask = metadata.get("mask")
    return int(mask["frame_length"] if mask else metadata["frame_length"])


def sample_rate_hz(metadata):
    """The sample rate the model was trained at. Every frame dataset gr-shapft makes is
    at 200 kHz; files written before the field existed lack it and were trained there."""
    return float(metadata.get("sample_rate_hz", SAMPLE_RATE_HZ))


def full_frame_length_of(path):
    """full_frame_length of a model file, read without loading torch (GRC port sizes)."""
    return full_frame_length(read_metadata(path))


def load(path):
    """Load and check a model file; any problem is a ValueError naming the file."""
    module, metadata, path = load_scripted(path, "model file")
    return checked_model(module, metadata, path)


def checked_model(module, metadata, path):
    """The LoadedModel of `module` (TorchScript, or an ONNX model file's ONNX Runtime
    module: core.onnx_file) and the metadata of its file, checked as load() says; any
    problem is a ValueError naming the file."""
    if metadata.get("format") == DETECTOR_FORMAT:
        raise ValueError(f"model file {path} is an attack detector, not a classifier")
    for key in ("arch", "classes", "frame_length"):
        if key not in metadata:
            raise ValueError(f"model file {path}: metadata lacks {key!r}")
    loaded = LoadedModel(module, metadata, artifacts.sha256_file(path), path)
    _check_shapes(loaded)
    return loaded


def load_scripted(path, what):
    """(TorchScript module in eval mode, its metadata, path) of a gr-shapft archive;
    problems are ValueErrors naming `what` and the file."""
    import torch  # here, not at the top: reading metadata (GRC, port sizes) needs no torch
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if not zipfile.is_zipfile(path):
        from . import onnx_file
        if onnx_file.is_onnx_path(path):
            raise ValueError(f"{what} {path} is an ONNX model, which only classifier_sink runs; "
                             "this needs the TorchScript model file (.pt) it was exported from")
        raise ValueError(f"{what} {path} is not a TorchScript archive (corrupt or wrong format)")
    extra = {METADATA_NAME: ""}
    try:
        with _quiet_torchscript():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as err:  # torch raises RuntimeError subclasses with long C++ traces
        raise ValueError(f"{what} {path} cannot be loaded as TorchScript: "
                         f"{str(err).splitlines()[0]}") from None
    if not extra[METADATA_NAME]:
        raise ValueError(f"{what} {path} carries no {METADATA_NAME} metadata; "
                         "export it with gr-shapft (shapft train)")
    try:
        metadata = json.loads(extra[METADATA_NAME])
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path}: metadata is not valid JSON ({err})") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{what} {path}: metadata is not a JSON object")
    module.eval()
    return module, metadata, path


def _check_shapes(loaded):
    import torch
    probe = torch.zeros(1, 2, loaded.frame_length)
    try:
        with torch.no_grad():
            logits = loaded.module(probe)
    except Exception as err:
        raise ValueError(f"model file {loaded.path}: forward fails on [1, 2, {loaded.frame_length}] "
                         f"input ({str(err).splitlines()[0]})") from None
    if tuple(logits.shape) != (1, len(loaded.classes)):
        raise ValueError(f"model file {loaded.path}: returns {tuple(logits.shape)}, expected "
                         f"(1, {len(loaded.classes)}) logits")
