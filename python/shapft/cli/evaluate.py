"""Accuracy of a model on a recording, overall and per SNR, clean and under attacks.

Attacks are listed as --attacks METHOD:EPS[,METHOD:EPS...] (e.g. fgsm:0.05,pgd:0.05)
or as one --method with --eps-list or --psr-list (space-separated values, e.g.
--method fgsm --psr-list -29 -23 -19.5 -17). Each attack is crafted against the
model itself (white box) from the recording's true labels (or --labels predicted),
and every budget is shown both as eps and as PSR in dB.

--json writes the full results (per-SNR accuracies, confusion matrices, budgets);
--figure draws accuracy vs SNR with one curve per condition.
"""
from . import CommandError, common


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="MODEL.pt", help="TorchScript model file")
    parser.add_argument("--data", required=True, metavar="REC", help="recording (.sigmf-meta path)")
    parser.add_argument("--attacks", metavar="LIST",
                        help="comma-separated METHOD:EPS, METHOD one of fgsm, fgm, bim, pgd")
    parser.add_argument("--method", choices=["fgsm", "fgm", "bim", "pgd"],
                        help="method for --eps-list/--psr-list")
    budgets = parser.add_mutually_exclusive_group()
    budgets.add_argument("--eps-list", nargs="+", type=float, metavar="EPS", help="eps budgets")
    budgets.add_argument("--psr-list", nargs="+", type=float, metavar="PSR_DB", help="PSR budgets in dB")
    parser.add_argument("--steps", type=int, help="iterations of bim/pgd (default 10)")
    parser.add_argument("--alpha", type=float, help="step size of bim/pgd (default 2.5 eps / steps)")
    parser.add_argument("--labels", choices=["truth", "predicted"], default="truth",
                        help="labels the attacks move away from (default truth)")
    parser.add_argument("--json", metavar="OUT.json", help="write the results as JSON")
    parser.add_argument("--figure", metavar="OUT.png", help="plot accuracy vs SNR")
    parser.add_argument("--batch-size", type=int, default=256, help="frames per attack batch (default 256)")
    common.add_seed(parser)
    common.add_threads(parser)
    common.add_quiet(parser)


def run(args):
    from ..core import artifacts, model_file
    from ..studies import stages

    common.apply_threads(args)
    frame_length = model_file.frame_length_of(artifacts.existing_file(args.model, "--model"))
    result = stages.evaluate_model(
        args.model, args.data, parse_attacks(args, frame_length), steps=args.steps, alpha=args.alpha,
        labels=args.labels, batch_size=args.batch_size, seed=args.seed, json_path=args.json,
        figure=args.figure, progress=not args.quiet)
    print(format_table(result))


def parse_attacks(args, frame_length):
    """[(method, eps), ...] from --attacks or --method with --eps-list/--psr-list."""
    from .. import attacks
    from ..core import budget
    if args.attacks and (args.method or args.eps_list or args.psr_list):
        raise CommandError("give either --attacks or --method with --eps-list/--psr-list")
    if bool(args.method) != bool(args.eps_list or args.psr_list):
        raise CommandError("--method needs --eps-list or --psr-list, and they need --method")
    if args.attacks:
        pairs = []
        for item in args.attacks.split(","):
            method, _, value = item.strip().partition(":")
            if method not in attacks.METHODS or not value:
                raise CommandError(f"--attacks: {item!r} is not METHOD:EPS with METHOD one of "
                                   f"{', '.join(attacks.METHODS)}")
            pairs.append((method, _number(value, "--attacks")))
    elif args.method:
        values = args.eps_list or args.psr_list
        norm = attacks.METHODS[args.method].norm
        if args.psr_list:
            values = [budget.psr_db_to_eps(v, norm, frame_length) for v in values]
        pairs = [(args.method, v) for v in values]
    else:
        return []
    return pairs


def format_table(result):
    """Overall and >= 10 dB accuracy per condition, then accuracy per SNR (%)."""
    conditions = [("clean", result["clean"])] + [
        (f"{e['method']}:{e['eps']:.4g}", e) for e in result["attacks"]]
    lines = [f"{result.get('model', 'model')} on {result.get('data', 'data')}: "
             f"{result['frames']} frames of {result['frame_length']} samples", ""]
    width = max(len(e.get("description", "clean")) for _, e in conditions)
    lines.append(f"{'condition':<{width}}  {'overall':>7}  {'>=10 dB':>7}")
    for _, entry in conditions:
        high = entry["high_snr_accuracy"]
        lines.append(f"{entry.get('description', 'clean'):<{width}}  {_pct(entry['accuracy']):>7}  "
                     f"{_pct(high):>7}")
    snrs = list(result["clean"]["per_snr"])
    if snrs:
        names = [name for name, _ in conditions]
        col = max(8, *(len(n) for n in names))
        lines += ["", "accuracy per SNR (%)", f"{'SNR dB':>6}  " + "  ".join(f"{n:>{col}}" for n in names)]
        for snr in snrs:
            cells = "  ".join(f"{_pct(e['per_snr'].get(snr)):>{col}}" for _, e in conditions)
            lines.append(f"{snr:>6}  {cells}")
    return "\n".join(lines)


def _pct(value):
    return "-" if value is None else f"{100 * value:.1f}"


def _number(text, option):
    try:
        return float(text)
    except ValueError:
        raise CommandError(f"{option}: {text!r} is not a number") from None
