"""Attack a recording against a model: write adversarial frames as a new recording.

The loss is cross-entropy on the model's logits. Untargeted attacks push frames away
from their labels: the recording's annotations (--labels truth) or the model's own
clean predictions (--labels predicted). --targeted pushes every frame towards
--target-class instead. Budgets: fgsm, bim and pgd bound each I and Q value by eps
(L-infinity); fgm bounds the L2 norm of each frame's perturbation. Give eps or the
perturbation-to-signal ratio --psr-db (fgsm at eps 0.05 is -23 dB).

The output OUTDIR/<input name>.sigmf-{meta,data} keeps the input's annotations (true
classes and SNRs) and records the attack in its global `shapft:attack` field. A model
that carries a negative-point mask (SHAP-FT) is attacked on full-length frames through
its deletion, as the fgsm_injector block does. Invalid frames (a NaN or infinite
sample, or all samples zero) cannot be attacked: they are left out of the output and
counted (`shapft:attack` frames_invalid and invalid_frame_indices), or refused with
--invalid-frames error. The input is read, attacked and written a batch at a time: any
size fits in memory.
"""

from . import common


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="MODEL.pt", help="TorchScript model file")
    parser.add_argument("--data", required=True, metavar="REC",
                        help="recording to attack (.sigmf-meta path)")
    parser.add_argument("--method", required=True, choices=["fgsm", "fgm", "bim", "pgd"],
                        help="attack method")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--eps", type=float, help="perturbation budget on the unit-power scale")
    budget.add_argument("--psr-db", type=float, help="budget as perturbation-to-signal ratio in dB")
    parser.add_argument("--steps", type=int, help="iterations of bim/pgd (default 10)")
    parser.add_argument("--alpha", type=float, help="step size of bim/pgd (default 2.5 eps / steps)")
    parser.add_argument("--targeted", action="store_true",
                        help="targeted attack towards --target-class")
    parser.add_argument("--target-class", metavar="NAME", help="class name the targeted attack aims at")
    parser.add_argument("--labels", choices=["truth", "predicted"], default="truth",
                        help="labels untargeted attacks move away from (default truth)")
    parser.add_argument("--out", required=True, metavar="OUTDIR", help="output directory")
    parser.add_argument("--batch-size", type=int, default=256, help="frames per batch (default 256)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output recording")
    common.add_model_run_options(parser)


def run(args):
    import numpy as np
    from ..studies import stages

    common.apply_threads(args)
    done = stages.attack_recording(
        args.model, args.data, args.method, args.out, eps=args.eps, psr_db=args.psr_db, steps=args.steps,
        alpha=args.alpha, targeted=args.targeted, target_class=args.target_class, labels=args.labels,
        batch_size=args.batch_size, seed=args.seed, force=args.force, progress=not args.quiet,
        invalid_frames=args.invalid_frames, precision=args.precision, device=args.device)
    outcome = (f"{100 * np.mean(done.predictions == done.labels):.1f}% now classified as {args.target_class}"
               if args.targeted else
               f"model now wrong on {100 * np.mean(done.predictions != done.true_labels):.1f}%")
    left_out = done.check.describe("of the input left out, not attacked")
    print(f"wrote {done.path}: {done.frames} frames, {done.description}; {outcome}"
          + (f"; {left_out}" if left_out else ""))
