"""Negative points from SHAP values: the deletion mask of SHAP-FT.

Takes the `.npz` of `shapft explain` on attacked frames (tiny-adv) with the true
class explained (--outputs true or all). The Shapley values of each frame's true
class are summed over I/Q and over the frames the rule selects; the positions whose
sum is negative are the negative points (m of them).

Frame rules: error (the paper's error-n: frames the original model gets wrong),
all, or auto (the paper: all frames at eps <= 0.05, error-n above).

Frames `shapft explain` skipped as invalid (NaN, Inf, all zero) are counted in the
mask (frames_invalid) and in the printed line.
"""


def add_arguments(parser):
    parser.add_argument("--shap", required=True, metavar="SHAP.npz", help="output of `shapft explain`")
    parser.add_argument("--out", required=True, metavar="MASK.json", help="mask file to write")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--eps", type=float, help="the attack's eps (the frames were attacked at)")
    budget.add_argument("--psr-db", type=float, help="the attack's budget as PSR in dB")
    parser.add_argument("--attack", default="fgsm", help="the attack's name, recorded in the mask (default fgsm)")
    parser.add_argument("--frames", choices=["auto", "error", "all"], default="auto",
                        help="which frames' values are summed (default auto: the paper's rule)")
    parser.add_argument("--normalise", choices=["none", "l1"], default="none",
                        help="l1: scale each frame's values to unit total magnitude first (default none)")
    parser.add_argument("--figure", metavar="PNG", help="also plot the 128 sums, negative points marked")
    parser.add_argument("--force", action="store_true", help="overwrite an existing mask")


def run(args):
    from ..core import budget
    from ..studies import stages

    done = stages.derive_mask(args.shap, args.out, eps=args.eps, psr_db=args.psr_db, attack=args.attack,
                              frames=args.frames, normalise=args.normalise, figure=args.figure,
                              force=args.force)
    skipped = done.check.describe("skipped by explain")
    note = f"; {skipped}" if skipped else ""
    print(f"{done.path}: m = {done.mask['m']} negative points of {done.mask['frame_length']} "
          f"({done.rule} rule, {done.frames_used} frames, {budget.describe(done.eps)}){note}")
