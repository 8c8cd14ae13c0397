"""Where the shipped default models and masks are (examples/models in the source tree,
installed to <prefix>/share/gr-shapft/models)."""
import os
import sys
from pathlib import Path

ENVIRONMENT_VARIABLE = "SHAPFT_MODELS_DIR"


def search_path():
    candidates = []
    if os.environ.get(ENVIRONMENT_VARIABLE):
        candidates.append(Path(os.environ[ENVIRONMENT_VARIABLE]))
    for prefix in (sys.prefix, "/usr/local", "/usr"):
        candidates.append(Path(prefix) / "share" / "gr-shapft" / "models")
    # Running from a source checkout (python/shapft/core -> examples/models).
    candidates.append(Path(__file__).resolve().parents[3] / "examples" / "models")
    return candidates


def model(name):
    """Path of a shipped file by name, e.g. model('cnn_lstm.pt')."""
    for directory in search_path():
        if (directory / name).is_file():
            return str(directory / name)
    searched = ", ".join(str(d) for d in search_path())
    raise FileNotFoundError(f"shipped file {name!r} not found in {searched} "
                            f"(set {ENVIRONMENT_VARIABLE} to its directory)")
