"""Options and checks shared by several `shapft` commands."""
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
