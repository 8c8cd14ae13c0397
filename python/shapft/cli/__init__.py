"""The `shapft` command line tool.

Each subcommand lives in its own module of this package with two functions,
`add_arguments(parser)` and `run(args)`. Modules are imported only when their
command runs, so `shapft generate` never pays for importing torch. A module whose
command trains in several processes under torchrun (learn.distributed) says so with
`TRAINS_IN_PROCESS_GROUPS = True`; the others refuse to run as several processes.
"""
import argparse
import importlib
import os
import sys
import warnings

# name -> (module, one-line help); order is the order of `shapft --help`.
COMMANDS = {
    "generate": ("generate", "write SigMF datasets from the GNU Radio channel-model source"),
    "import": ("import_radioml", "convert RadioML 2016.10a (.pkl) or 2018.01a (.hdf5) to SigMF"),
    "record": ("record", "a SigMF stream recording of the transmitters at any sample rate and offset"),
    "plot-frames": ("plot_frames", "plot one frame per class: time domain and constellation"),
    "train": ("train", "train a classifier and export it as TorchScript"),
    "attack": ("attack", "attack a recording (FGSM, FGM, BIM, PGD) against a model"),
    "evaluate": ("evaluate", "accuracy overall and per SNR, clean and under attacks"),
    "classify": ("classify", "classify a stream recording as a live flowgraph does (framer, gate, sink)"),
    "uap": ("uap", "a universal adversarial perturbation: one perturbation for every frame"),
    "robustness": ("robustness", "the robustness leaderboard: models against the standard attack ensemble"),
    "certify": ("certify", "randomized smoothing: certified accuracy against L2 perturbations"),
    "smooth": ("smooth", "a model file of a model smoothed with Gaussian noise, for the leaderboard (EOT)"),
    "explain": ("explain", "SHAP values (expected gradients) of frames"),
    "mask": ("mask", "negative points from SHAP values: the deletion mask"),
    "finetune": ("finetune", "SHAP-FT: fine-tune on frames with the mask's positions deleted"),
    "detector": ("detector", "train an attack detector for a classifier (SHAP-AFT's first stage)"),
    "detection": ("detection", "ROC of an attack detector against non-adaptive and adaptive attacks"),
    "distill": ("distill", "attention-based adversarial robust distillation of a compact transformer"),
    "export": ("export", "export a model file to ONNX, checked against it in ONNX Runtime"),
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
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                        help="print the gr-shapft version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def version():
    """gr-shapft's version: the package's __version__ (CMakeLists.txt's project version)."""
    package = sys.modules[__name__.rpartition(".")[0]]
    return getattr(package, "__version__", None) or "unknown"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        _parser().parse_args(argv)  # prints help or the "invalid choice" error
        return 2
    name = argv[0]
    try:   # Ctrl-C while the module imports (torch: seconds) or the arguments parse too
        module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
        parser = argparse.ArgumentParser(prog=f"shapft {name}", description=module.__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        _check_launcher(name, module)
        with _one_line_warnings(name):
            result = module.run(args)
    except KeyboardInterrupt:
        print(f"shapft {name}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, OSError) as err:   # OSError: files (missing, taken, disk full, ...)
        print(f"shapft {name}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    return int(result or 0)


def _check_launcher(name, module):
    """Refuse a command started by torchrun as one of several processes that cannot share
    its work: each copy would do all of it and write the same files."""
    from ..learn import distributed
    processes = distributed.environment()[0]
    if processes > 1 and not getattr(module, "TRAINS_IN_PROCESS_GROUPS", False):
        raise CommandError(f"started by torchrun as one of {processes} processes (WORLD_SIZE), but only "
                           f"`shapft train` and `shapft finetune` train in several processes; run `shapft {name}` "
                           "alone")


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _one_line_warnings:
    """While a command runs, gr-shapft's own warnings (UserWarnings raised from the
    package, e.g. a budget above 0 dB PSR) print as one line, `shapft CMD: warning: ...`,
    every time; other warnings are left to Python. Restored afterwards."""

    def __init__(self, command):
        self.command = command
        self._saved = warnings.catch_warnings()

    def __enter__(self):
        from ..core.budget import BudgetWarning
        self._saved.__enter__()
        warnings.simplefilter("always", BudgetWarning)
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            ours = os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)
            if issubclass(category, UserWarning) and ours:
                print(f"shapft {self.command}: warning: {_one_line(message)}", file=sys.stderr)
            else:
                previous(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        return self

    def __exit__(self, *exc):
        return self._saved.__exit__(*exc)


def _one_line(err):
    text = str(err) or type(err).__name__
    return " ".join(text.split())
