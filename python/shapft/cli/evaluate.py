"""Accuracy of a model on a recording, overall and per SNR, clean and under attacks.

Attacks are listed as --attacks METHOD:EPS[,METHOD:EPS...] (e.g. fgsm:0.05,pgd:0.05)
or as one --method with --eps-list or --psr-list (space-separated values, e.g.
--method fgsm --psr-list -29 -23 -19.5 -17). Each attack is crafted against the
model itself (white box) from the recording's true labels (or --labels predicted),
and every budget is shown both as eps and as PSR in dB.

The first row is the recording's frames as they are: "clean", or "as recorded (...)"
with the attack an attacked recording (`shapft attack`) carries. A model that carries a
negative-point mask (SHAP-FT) classifies full-length frames through its deletion, as
classifier_sink does; frames already of its shorter length work too. Invalid frames (a
NaN or infinite sample, or all samples zero) are left out and counted, or refused with
--invalid-frames error.

The recording is read a batch at a time (once, then once per attack): any size fits
in memory.

--json writes the full results (per-SNR accuracies, confusion matrices, budgets);
--figure draws accuracy vs SNR with one curve per condition. Both are checked writable
before the evaluation starts.
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
    common.add_model_run_options(parser)


def run(args):
    from ..studies import stages

    common.apply_threads(args)
    result = stages.evaluate_model(
        args.model, args.data, parse_attacks(args), steps=args.steps, alpha=args.alpha,
        labels=args.labels, batch_size=args.batch_size, seed=args.seed, json_path=args.json,
        figure=args.figure, progress=not args.quiet, invalid_frames=args.invalid_frames, precision=args.precision,
        device=args.device)
    print(format_table(result))


def parse_attacks(args):
    """[(method, eps, psr_db), ...] (one of eps, psr_db None) from --attacks or --method
    with --eps-list/--psr-list."""
    from .. import attacks
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
            pairs.append((method, _number(value, "--attacks"), None))
    elif args.eps_list:
        pairs = [(args.method, v, None) for v in args.eps_list]
    elif args.psr_list:
        pairs = [(args.method, None, v) for v in args.psr_list]
    else:
        return []
    return pairs


def format_table(result):
    """Overall and >= 10 dB accuracy per condition, then accuracy per SNR (%)."""
    from ..core import recording
    from ..studies.stages import condition_name
    conditions = [(condition_name(result["clean"]), result["clean"])] + [
        (f"{e['method']}:{e['eps']:.4g}", e) for e in result["attacks"]]
    deletion = (f", through its mask's deletion of {result['mask_applied']} positions"
                if result.get("mask_applied") else "")
    lines = [f"{result.get('model', 'model')} on {result.get('data', 'data')}: "
             f"{result['frames']} frames of {result['frame_length']} samples{deletion}"]
    skipped = recording.FrameCheck.from_indices(result.get("invalid_frame_indices") or {}).describe()
    lines += [skipped] if skipped else []
    lines.append("")
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
