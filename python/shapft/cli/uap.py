"""Compute a universal adversarial perturbation (UAP): one perturbation, made offline on
the frames of a recording, that lowers a model's accuracy when added to any frame,
unseen (the over-the-air threat; Sadeghi & Larsson, arXiv:1808.07713).

It maximises the model's mean cross-entropy on the --data frames (their true classes)
by projected stochastic gradient ascent over minibatches, --epochs passes over the
shuffled frames: sign steps for --norm linf (eps bounds each I and Q value), steps
along the normalised gradient for --norm l2 (eps bounds the perturbation's L2 norm
over the whole frame). Give eps or the perturbation-to-signal ratio --psr-db. With
--random-shift every frame of every step sees the perturbation circularly shifted in
time by its own random amount, so the result works without frame synchronisation.

The output FILE (.npz, docs/formats.md) holds the perturbation and how it was made; the
fgsm_injector block adds it to a stream (method uap). The summary gives the model's
accuracy on the --data frames clean, with the perturbation, and with it at a random
shift per frame. A model that carries a negative-point mask (SHAP-FT) is attacked
through its deletion on full-length frames. Invalid frames (a NaN or infinite sample,
or all samples zero) are left out and counted, or refused with --invalid-frames error.
"""

from . import common


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="MODEL.pt", help="TorchScript model file")
    parser.add_argument("--data", required=True, metavar="REC",
                        help="recording whose frames the perturbation is computed on (.sigmf-meta path)")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--eps", type=float, help="perturbation budget on the unit-power scale")
    budget.add_argument("--psr-db", type=float, help="budget as perturbation-to-signal ratio in dB")
    parser.add_argument("--norm", choices=["linf", "l2"], default="linf",
                        help="linf: eps bounds each I and Q value; l2: eps bounds the L2 norm over the "
                             "frame (default linf)")
    parser.add_argument("--epochs", type=int, default=5, help="passes over the frames (default 5)")
    parser.add_argument("--batch-size", type=int, default=256, help="frames per step (default 256)")
    parser.add_argument("--step", type=float,
                        help="size of each step: a component's change (linf) or the step's L2 norm (l2) "
                             "(default eps / 10, larger when there are fewer than 25 steps in all: "
                             "2.5 eps / steps)")
    parser.add_argument("--random-shift", action="store_true",
                        help="compute it for a random circular time shift per frame (no frame "
                             "synchronisation)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output perturbation file (.npz)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    common.add_model_run_options(parser)


def run(args):
    from ..studies import stages

    common.apply_threads(args)
    done = stages.uap_recording(
        args.model, args.data, args.out, eps=args.eps, psr_db=args.psr_db, norm=args.norm, epochs=args.epochs,
        batch_size=args.batch_size, step=args.step, random_shift=args.random_shift, seed=args.seed,
        precision=args.precision, invalid_frames=args.invalid_frames, force=args.force, progress=not args.quiet,
        device=args.device)
    accuracy = {name: f"{100 * value:.1f}%" for name, value in done.accuracy.items()}
    print(f"wrote {done.path}: {done.universal.describe()}, from {done.frames} frames")
    print(f"accuracy on those frames: clean {accuracy['clean']}, with the perturbation {accuracy['perturbed']}, "
          f"at a random shift per frame {accuracy['shifted']}")
    common.print_invalid([(done.check, "--data")])
