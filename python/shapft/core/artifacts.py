"""Atomic file writing and content hashes for every artifact gr-shapft produces."""
import contextlib
import hashlib
import json
import os
import shlex
import signal
import tempfile
import threading
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only on success,
    so a crash never leaves a half-written artifact. An OSError names `path`, never
    the temporary file."""
    with atomic_paths(path) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(*paths):
    """atomic_path for files published together (a SigMF pair): yield a temporary path
    beside each; on success rename them onto `paths`, in order, with Ctrl-C held back
    until the last rename, so an interrupt leaves all of them or none."""
    paths = [Path(path) for path in paths]
    tmps = []
    try:
        for path in paths:
            tmps.append(_temporary_beside(path))
        yield tuple(tmps)
        mode = 0o666 & ~_umask()   # mkstemp makes the file private (0600); give it what a plain open() would
        for tmp in tmps:
            os.chmod(tmp, mode)
        with sigint_deferred():
            for tmp, path in zip(tmps, paths):
                os.replace(tmp, path)
    except OSError as err:
        named = {str(tmp): path for tmp, path in zip(tmps, paths)}.get(str(err.filename))
        if named is not None:
            raise type(err)(err.errno, f"cannot write {named}: {err.strerror}") from None
        raise
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _temporary_beside(path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OSError(err.errno, f"cannot write {path}: {err.strerror}") from None
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def sigint_deferred():
    """Hold Ctrl-C back while the block runs: a SIGINT sets the yielded Event, and the
    handler it would have run (Python's raises KeyboardInterrupt) runs once the block
    ends. Signal handlers are the main thread's: elsewhere, or where SIGINT is ignored,
    the block runs as it is (and the Event stays clear)."""
    arrived = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield arrived
        return
    signal.signal(signal.SIGINT, lambda signum, frame: arrived.set())
    try:
        yield arrived
    finally:
        signal.signal(signal.SIGINT, previous)
        if arrived.is_set():
            previous(signal.SIGINT, None)


def _umask():
    with _UMASK_LOCK:   # reading the umask means setting it; no other thread may see the 0
        mask = os.umask(0)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def write_json(path, obj):
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_new_output(path, force=False, option="--out"):
    """Refuse to overwrite an existing file unless `force`, or a directory where a file
    goes; the error names the option that gave the path."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path}: is a directory")
    if path.exists() and not force:
        raise FileExistsError(f"{option} {path} exists; pass --force to overwrite it")
    return path


def writable_dir(path, force=False, expect=(), option="--out"):
    """Create directory `path` if needed and check it is writable. With `expect` (file
    names), refuse when any exists unless force."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{option} {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"{option} {path}: cannot create it ({err.strerror})") from None
    if not os.access(path, os.W_OK):
        raise PermissionError(f"{option} {path}: not writable")
    if not force:
        for name in expect:
            check_new_output(path / name, option=option)
    return path


def existing_file(path, option):
    """`path` as a Path if it is a file; else a FileNotFoundError naming the option."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{option} {path}: no such file")
    return path


def command_line(command, *options):
    """The `shapft` command that remakes an artifact, shell-quoted, from (option, value)
    pairs: None and False are left out, True is a bare flag. Recorded as provenance."""
    words = ["shapft", command]
    for option, value in options:
        if value is None or value is False:
            continue
        words.append(option)
        if value is not True:
            words.append(str(value))
    return shlex.join(words)
