"""Options and checks shared by several `shapft` commands."""
from . import CommandError


def add_seed(parser, default=0):
    parser.add_argument("--seed", type=int, default=default,
                        help=f"random seed; the same seed gives the same output (default {default})")


def add_threads(parser):
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads; 0 = torch's default, one per core (default 0), "
                             "as the blocks' num_threads")


def add_quiet(parser):
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_precision(parser, default="fp32"):
    parser.add_argument("--precision", choices=["fp32", "bf16", "auto"], default=default,
                        help="arithmetic of the model's forward (and backward) passes: fp32, bf16 "
                             "(bfloat16 autocast; losses and softmax stay fp32), or auto = bf16 where the "
                             f"hardware computes it natively, else fp32 (default {default}; docs/precision.md)")


def add_device(parser):
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="where the model runs: cpu, cuda (cuda:N for the Nth GPU), mps (Apple), or "
                             "auto = cuda when available, else cpu (default auto); one this machine lacks "
                             "is refused")


def add_model_run_options(parser):
    """The options of every command that runs a model on recorded frames, in --help order."""
    add_invalid_frames(parser)
    add_seed(parser)
    add_threads(parser)
    add_precision(parser)
    add_device(parser)
    add_quiet(parser)


def add_invalid_frames(parser):
    parser.add_argument("--invalid-frames", choices=["skip", "error"], default="skip",
                        help="frames with a NaN or infinite sample, or all samples zero: skip leaves "
                             "them out and counts them (default), error refuses the recording, "
                             "naming the first such frame")


def apply_threads(args):
    import torch
    if args.threads is None or args.threads == 0:
        return   # torch's default: one thread per core
    if args.threads < 0:
        raise CommandError(f"--threads must be >= 0 (0 = torch's default, one per core), got {args.threads}")
    torch.set_num_threads(args.threads)


def invalid_note(check, option):
    """The line saying which invalid frames of `option`'s recording were left out, or ''."""
    text = check.describe() if check is not None else ""
    return f"{option}: {text}" if text else ""


def print_invalid(checks):
    """Print invalid_note for each (check, option) that left frames out."""
    for check, option in checks:
        note = invalid_note(check, option)
        if note:
            print(note)
