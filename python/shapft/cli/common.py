"""Options and checks shared by several `shapft` commands."""
import os
from pathlib import Path

from . import CommandError


def add_seed(parser, default=0):
    parser.add_argument("--seed", type=int, default=default,
                        help=f"random seed; the same seed gives the same output (default {default})")


def add_threads(parser):
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, one per core)")


def add_quiet(parser):
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def apply_threads(args):
    import torch
    if args.threads is not None:
        if args.threads < 1:
            raise CommandError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)


def writable_dir(path, force=False, expect=()):
    """Create `path` if needed and check it is writable. With `expect` (file names),
    refuse when any exists unless force."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CommandError(f"--out {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CommandError(f"--out {path}: cannot create it ({err.strerror})") from None
    if not os.access(path, os.W_OK):
        raise CommandError(f"--out {path}: not writable")
    if not force:
        for name in expect:
            if (path / name).exists():
                raise CommandError(f"{path / name} exists; pass --force to overwrite")
    return path


def existing_file(path, what):
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"{what} {path}: no such file")
    return path


def read_splits(data_dir, required=("train", "val", "test"), optional=()):
    """The train/val/test recordings of a dataset directory and their provenance digests.
    A missing required split, or splits of different frame lengths, is a one-line error."""
    from ..core import artifacts, recording
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CommandError(f"--data {data_dir}: not a directory")
    splits, digests = {}, {}
    for name in (*required, *optional):
        meta, data = recording.paths(data_dir / name)
        if not meta.exists():
            if name in optional:
                continue
            raise CommandError(f"--data {data_dir}: no {meta.name} (need {', '.join(required)} splits)")
        splits[name] = recording.read(meta)
        digests[name] = {"path": str(meta), "meta_sha256": artifacts.sha256_file(meta),
                         "data_sha256": artifacts.sha256_file(data)}
    lengths = {name: split.frame_length for name, split in splits.items()}
    if len(set(lengths.values())) != 1:
        raise CommandError(f"--data {data_dir}: splits have different frame lengths {lengths}")
    return splits, digests
