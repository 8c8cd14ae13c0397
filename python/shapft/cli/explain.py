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
"""
import time
from pathlib import Path

import numpy as np

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
    parser.add_argument("--force", action="store_true", help="overwrite --out")
    common.add_quiet(parser)


def run(args):
    from ..core import artifacts, model_file, recording
    from ..learn import explain

    _check_options(args)
    common.apply_threads(args)
    model_path = common.existing_file(args.model, "--model")
    model = model_file.load(model_path)
    background_rec = _read(args.background, "--background", model.frame_length)
    data = _read(args.data, "--data", model.frame_length)
    if args.background_size > len(background_rec):
        raise common.CommandError(f"--background-size {args.background_size} exceeds the "
                                  f"{len(background_rec)} frames of --background {args.background}")
    if data.labels.max() >= len(model.classes):
        raise common.CommandError(f"--data {args.data}: labels reach class {data.labels.max()}, "
                                  f"the model has {len(model.classes)} classes")

    rng = np.random.default_rng(args.seed)
    background_indices = np.sort(rng.choice(len(background_rec), args.background_size, replace=False))
    background = background_rec.subset(background_indices).model_input()
    frames = data.model_input()
    predicted = explain.predicted_classes(model.module, frames)
    # "predicted" stays a name: shap's engine then explains only the top output (ranked_outputs)
    outputs = data.labels[:, None] if args.outputs == "true" else args.outputs

    start = time.perf_counter()
    if args.engine == "vectorised":
        result = explain.expected_gradients(
            model.module, background, frames, outputs=outputs, nsamples=args.nsamples,
            seed=args.seed, output=args.output, alphas=args.alphas,
            batch_size=args.batch_size or explain.DEFAULT_BATCH_SIZE, progress=not args.quiet)
    else:
        result = explain.shap_reference(
            model.module, background, frames, nsamples=args.nsamples, seed=args.seed,
            output=args.output, outputs=outputs,
            batch_size=args.batch_size or explain.SHAP_BATCH_SIZE, progress=not args.quiet)
    elapsed = time.perf_counter() - start

    explain.save(args.out, result, frame_indices=np.arange(len(data)),
                 background_indices=background_indices, labels=data.labels, predicted=predicted,
                 class_names=model.classes, engine=args.engine, outputs=args.outputs,
                 output=args.output, alphas=args.alphas, nsamples=args.nsamples, seed=args.seed,
                 model_sha256=model.sha256,
                 data_sha256=artifacts.sha256_file(recording.paths(args.data)[1]),
                 background_sha256=artifacts.sha256_file(recording.paths(args.background)[1]))
    print(f"{args.out}: shap_values {result.values.shape} ({args.outputs} outputs, {args.output}), "
          f"engine {args.engine}, nsamples {args.nsamples}, alphas {args.alphas}, "
          f"background {args.background_size}")
    print(f"{len(frames)} frames in {elapsed:.1f} s ({len(frames) / elapsed:.2f} frames/s)")


def _check_options(args):
    for name in ("background_size", "nsamples", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise common.CommandError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.engine == "shap" and args.alphas != "shap":
        raise common.CommandError(f"--alphas {args.alphas} needs --engine vectorised "
                                  "(shap draws its alphas uniformly)")
    out = Path(args.out)
    if out.is_dir():
        raise common.CommandError(f"--out {out}: is a directory")
    if out.exists() and not args.force:
        raise common.CommandError(f"--out {out} exists; pass --force to overwrite it")


def _read(path, option, frame_length):
    from ..core import recording
    rec = recording.read(common.existing_file(recording.paths(path)[0], option))
    if rec.frame_length != frame_length:
        raise common.CommandError(f"{option} {path}: frames of {rec.frame_length} samples, "
                                  f"but the model takes {frame_length}")
    return rec
