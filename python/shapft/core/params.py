"""Checks of arguments by name, for the blocks' constructors and callbacks and the
library functions they share (free of torch and GNU Radio): each returns the value in
the type the caller uses, or raises naming the parameter (TypeError for a value of the
wrong type, ValueError for a bad value)."""
import math
import numbers
import os
from pathlib import Path

import numpy as np


def _named(name, message, error=ValueError):
    return error(f"{name}: {message}")


def file_path(value, name):
    """A non-empty path (str or os.PathLike) of a file to read; existence is the loader's check."""
    if not isinstance(value, (str, os.PathLike)):
        raise _named(name, f"must be a file path, got {value!r}", TypeError)
    if not str(value):
        raise _named(name, "must be a file path, got an empty one")
    return value


def integer(value, name, minimum=None):
    """An int (numpy integers and integral floats too; not a bool or a string)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise _named(name, f"must be an integer, got {value!r}", TypeError)
    if not (math.isfinite(value) and int(value) == value):
        raise _named(name, f"must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise _named(name, f"must be >= {minimum}, got {value}")
    return value


def number(value, name):
    """A finite real number, as float (not a bool or a string)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise _named(name, f"must be a number, got {value!r}", TypeError)
    if not math.isfinite(value):
        raise _named(name, f"must be a finite number, got {value!r}")
    return float(value)


def boolean(value, name):
    """True or False (numpy bools and the integers 0 and 1 too)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    raise _named(name, f"must be True or False, got {value!r}", TypeError)


def text(value, name):
    """A str."""
    if not isinstance(value, str):
        raise _named(name, f"must be a string, got {value!r}", TypeError)
    return value


def choice(value, name, options):
    """One of the strings `options`."""
    if not isinstance(value, str) or value not in options:
        raise _named(name, f"{value!r} is not one of {', '.join(options)}")
    return value


def output_file(value, name):
    """A file the block writes when the flowgraph stops, as a Path; '' or None: none.

    Its directory must exist and be writable (no directory is created), and the path
    must not be a directory; an existing file is replaced."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise _named(name, f"must be a file path or '', got {value!r}", TypeError)
    if not str(value):
        return None
    path = Path(value).absolute()
    if path.is_dir():
        raise _named(name, f"{value}: is a directory")
    parent = path.parent
    if not parent.exists():
        raise _named(name, f"{value}: parent directory {parent} does not exist")
    if not parent.is_dir():
        raise _named(name, f"{value}: parent {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _named(name, f"{value}: parent directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise _named(name, f"{value}: exists and is not writable")
    return path


def write_output_file(path, write):
    """write(path) for a path output_file accepted, into the directory it checked: one
    removed since is an error, not re-created."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"its directory {path.parent} no longer exists")
    write(path)
