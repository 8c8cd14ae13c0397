"""The `shapft` command line tool.

Each subcommand lives in its own module of this package with two functions,
`add_arguments(parser)` and `run(args)`. Modules are imported only when their
command runs, so `shapft generate` never pays for importing torch.
"""
import argparse
import importlib
import sys

# name -> (module, one-line help); order is the order of `shapft --help`.
COMMANDS = {
    "generate": ("generate", "write SigMF datasets from the GNU Radio channel-model source"),
    "import": ("import_radioml", "convert RadioML 2016.10a (.pkl) or 2018.01a (.hdf5) to SigMF"),
    "plot-frames": ("plot_frames", "plot one frame per class: time domain and constellation"),
    "train": ("train", "train a classifier and export it as TorchScript"),
    "attack": ("attack", "attack a recording (FGSM, FGM, BIM, PGD) against a model"),
    "evaluate": ("evaluate", "accuracy overall and per SNR, clean and under attacks"),
    "explain": ("explain", "SHAP values (expected gradients) of frames"),
    "mask": ("mask", "negative points from SHAP values: the deletion mask"),
    "finetune": ("finetune", "SHAP-FT: fine-tune on frames with the mask's positions deleted"),
    "distill": ("distill", "attention-based adversarial robust distillation of a compact transformer"),
    "reproduce": ("reproduce", "the whole SHAP-FT and distillation pipeline, report and figures"),
}


class CommandError(Exception):
    """Bad input that the command reports in one line and exits non-zero."""


def _parser():
    parser = argparse.ArgumentParser(
        prog="shapft",
        description="gr-shapft: attack and defend deep-learning modulation classifiers "
                    "(SHAP-FT, attention-based robust distillation) with GNU Radio.",
        epilog="Run `shapft COMMAND --help` for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        _parser().parse_args(argv)  # prints help or the "invalid choice" error
        return 2
    name = argv[0]
    module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
    parser = argparse.ArgumentParser(prog=f"shapft {name}", description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        result = module.run(args)
    except KeyboardInterrupt:
        print(f"shapft {name}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, FileExistsError, FileNotFoundError, PermissionError,
            IsADirectoryError, NotADirectoryError) as err:
        print(f"shapft {name}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    return int(result or 0)


def _one_line(err):
    text = str(err) or type(err).__name__
    return " ".join(text.split())
