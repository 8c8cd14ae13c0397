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
