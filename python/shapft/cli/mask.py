"""Negative points from SHAP values: the deletion mask of SHAP-FT.

Takes the `.npz` of `shapft explain` on attacked frames (tiny-adv) with the true
class explained (--outputs true or all). The Shapley values of each frame's true
class are summed over I/Q and over the frames the rule selects; the positions whose
sum is negative are the negative points (m of them).

Frame rules: error (the paper's error-n: frames the original model gets wrong),
all, or auto (the paper: all frames at eps <= 0.05, error-n above).
"""

from . import common


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
    from pathlib import Path
    from ..core import budget, masks
    from ..learn import explain
    out = Path(args.out)
    if out.exists() and not args.force:
        raise common.CommandError(f"{out} exists; pass --force to overwrite")
    eps = budget.resolve_eps(args.eps, args.psr_db)
    content = explain.load(common.existing_file(args.shap, "--shap"))
    try:
        values = masks.true_class_values(content)
    except ValueError as err:
        raise common.CommandError(str(err)) from None
    drop, sums, rule, n_frames = masks.find(values, content["labels"], content["predicted"],
                                                      eps, args.frames, args.normalise)
    if n_frames == 0:
        raise common.CommandError(f"rule {rule!r} selects no frames (the model gets every attacked frame "
                                  "right); use --frames all")
    mask = masks.make_mask(
        drop, values.shape[-1], args.attack, eps, content["model_sha256"],
        psr_db=budget.eps_to_psr_db(eps), frame_rule=rule, frames_used=n_frames,
        normalise=args.normalise, shap_output=content["output"], nsamples=content["nsamples"],
        shap_seed=content["seed"], explained_sha256=content["data_sha256"])
    masks.save(out, mask)
    if args.figure:
        from ..studies.figures import shapft as shapft_figures
        shapft_figures.shapley_sums({eps: (sums, drop)}, args.figure)
    print(f"{out}: m = {len(drop)} negative points of {values.shape[-1]} "
          f"({rule} rule, {n_frames} frames, {budget.describe(eps)})")
