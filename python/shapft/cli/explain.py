"""SHAP values (expected gradients) of a recording's frames: SHAP-FT's stage B.

The background is a seeded random subset of --background (the paper: 5000 frames of
tiny-train); every frame of --data is explained (the paper: the 330 FGSM-attacked
tiny-test frames), for every class (--outputs all: the (N, 2, 128, 11) tensor), the
true class only (--outputs true: all the negative-point mask needs, 11x less work) or
the predicted class (--outputs predicted). The explained score is the class probability
(--output softmax, as in the paper, whose network ends in a softmax layer) or the logit.

--engine vectorised (default) batches the interpolants of many frames through one
forward pass; with --alphas shap it makes exactly shap.GradientExplainer's draws, so
--engine shap (shap itself, the reference) gives the same values for the same seed.
--alphas stratified puts one alpha in each of nsamples equal strata of [0, 1]: a
lower-variance estimate for the same nsamples.

The .npz holds shap_values (N, 2, L, K), frame_indices, background_indices,
output_classes (N, K), labels, predicted, class_names, draw_background, draw_alphas
and the settings with the sha256 of the model and of both recordings' data files.

Invalid frames (a NaN or infinite sample, or all samples zero) are left out of both
recordings and counted; the .npz lists the skipped data frames (invalid_indices,
invalid_reasons), which `shapft mask` reports. --invalid-frames error refuses them
instead. A model that carries a negative-point mask (SHAP-FT) is explained on
full-length frames through its deletion.
"""
from . import common


def add_arguments(parser):
    from ..learn.explain import ALPHA_SCHEMES, ENGINES, OUTPUT_TRANSFORMS
    parser.add_argument("--model", required=True, metavar="MODEL.pt", help="TorchScript model file")
    parser.add_argument("--background", required=True, metavar="REC.sigmf-meta",
                        help="recording the background frames are drawn from (e.g. tiny-train)")
    parser.add_argument("--data", required=True, metavar="REC.sigmf-meta",
                        help="recording whose frames are explained (e.g. the attacked tiny-test)")
    parser.add_argument("--out", required=True, metavar="SHAP.npz", help="output file")
    parser.add_argument("--background-size", type=int, default=5000,
                        help="background frames, a seeded random subset (default 5000)")
    parser.add_argument("--nsamples", type=int, default=200,
                        help="(background frame, alpha) draws per explained frame (default 200)")
    parser.add_argument("--outputs", choices=["all", "true", "predicted"], default="all",
                        help="classes explained: all, each frame's true or predicted class (default all)")
    parser.add_argument("--output", choices=OUTPUT_TRANSFORMS, default="softmax",
                        help="explained score: the class probabilities (default, as in the paper, "
                             "whose network ends in a softmax) or the logits")
    parser.add_argument("--alphas", choices=ALPHA_SCHEMES, default="shap",
                        help="interpolation points: shap's uniform draws or stratified (default shap)")
    parser.add_argument("--engine", choices=ENGINES, default="vectorised",
                        help="vectorised (fast) or shap (shap.GradientExplainer, the reference)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="interpolants per forward pass (default 50 for both engines)")
    common.add_seed(parser)
    common.add_threads(parser)
    common.add_precision(parser)
    common.add_device(parser)
    parser.add_argument("--force", action="store_true", help="overwrite --out")
    common.add_invalid_frames(parser)
    common.add_quiet(parser)


def run(args):
    from ..studies import stages

    common.apply_threads(args)
    done = stages.explain_recording(
        args.model, args.background, args.data, args.out, background_size=args.background_size,
        nsamples=args.nsamples, outputs=args.outputs, output=args.output, alphas=args.alphas,
        engine=args.engine, batch_size=args.batch_size, seed=args.seed, force=args.force,
        progress=not args.quiet, invalid_frames=args.invalid_frames, precision=args.precision, device=args.device)
    print(f"{done.path}: shap_values {done.shape} ({args.outputs} outputs, {args.output}), "
          f"engine {args.engine}, nsamples {args.nsamples}, alphas {args.alphas}, "
          f"background {args.background_size}")
    print(f"{done.frames} frames in {done.seconds:.1f} s ({done.frames / done.seconds:.2f} frames/s)")
    common.print_invalid([(done.check, "--data"), (done.background_check, "--background")])
