"""SHAP-FT fine-tuning: delete the mask's positions from every training frame and
fine-tune the original CNN-LSTM on the shortened frames with the paper's settings
(dense 256 -> 128, batch 20, up to 50 epochs, early stopping on a fifth of the data).

The exported model carries the mask, so `negative_point_mask` and `classifier_sink`
need nothing but the model file. Baselines with the same recipe: --method direct
(no deletion), random (m random positions), at_fgsm (FGSM adversarial training at
--eps).
"""
from pathlib import Path


from . import common


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="ORIGINAL.pt", help="the original cnn_lstm")
    parser.add_argument("--data", required=True, metavar="REC", help="training frames (tiny-train)")
    parser.add_argument("--out", required=True, metavar="MODEL.pt")
    parser.add_argument("--method", choices=["shapft", "random", "direct", "at_fgsm"], default="shapft")
    parser.add_argument("--mask", metavar="MASK.json", help="shapft: the mask; random: its m is used")
    parser.add_argument("--eps", type=float, help="at_fgsm: the adversarial-training budget")
    parser.add_argument("--epochs", type=int, default=50, help="at most this many epochs (default 50)")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience (default 5)")
    parser.add_argument("--evaluate", metavar="REC", help="then classify this recording (e.g. adv-data), "
                        "after deleting the same positions")
    parser.add_argument("--force", action="store_true",
                        help="accept a mask derived from another model (warns), overwrite --out")
    common.add_seed(parser)
    common.add_threads(parser)
    common.add_quiet(parser)


def run(args):
    import sys
    from ..learn import metrics, finetune
    from ..core import model_file, masks, recording
    common.apply_threads(args)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise common.CommandError(f"{out} exists; pass --force to overwrite")
    loaded = model_file.load(common.existing_file(args.model, "--model"))
    data = recording.read(common.existing_file(args.data, "--data"))
    if data.frame_length != loaded.frame_length:
        raise common.CommandError(f"--data frames have {data.frame_length} samples, the model takes "
                                  f"{loaded.frame_length}")
    mask = None
    if args.method in ("shapft", "random"):
        if not args.mask:
            raise common.CommandError(f"--method {args.method} needs --mask")
        mask = masks.load(args.mask)
        masks.check_fits_model(mask, loaded, force=args.force)
        if args.method == "random":
            mask = masks.make_mask(
                masks.random_positions(mask["m"], mask["frame_length"], args.seed),
                mask["frame_length"], mask.get("attack"), mask.get("eps"), loaded.sha256,
                selection=f"random (seed {args.seed}), m of {args.mask}")
    if args.method == "at_fgsm" and args.eps is None:
        raise common.CommandError("--method at_fgsm needs --eps")
    if args.eps is not None and args.eps < 0:
        raise common.CommandError(f"--eps must be >= 0, got {args.eps}")
    target = None
    if args.evaluate:   # read before training: a wrong file must not cost a fine-tuning run
        target = recording.read(common.existing_file(args.evaluate, "--evaluate"))
        if target.frame_length != loaded.frame_length:
            raise common.CommandError(f"--evaluate frames have {target.frame_length} samples, the model "
                                      f"takes {loaded.frame_length}")
    keep = masks.keep_positions(mask) if mask else None
    model, result = finetune.finetune(finetune.cnn_lstm_from(loaded), data.model_input(), data.labels,
                                      data.snr_db, args.method, keep=keep, eps=args.eps, seed=args.seed,
                                      epochs=args.epochs, patience=args.patience,
                                      progress=not args.quiet)
    length = len(keep) if keep is not None else loaded.frame_length
    provenance = {"command": "shapft " + " ".join(sys.argv[1:]), "seed": args.seed,
                  "original_sha256": loaded.sha256,
                  "data_sha256": {Path(args.data).name: recording.data_sha256(args.data)}}
    finetune.export(model, out, length, mask, provenance, result, args.method)
    print(f"{out}: {args.method}, frames of {length} samples, best epoch {result.best_epoch} of "
          f"{result.epochs_run}, val accuracy {100 * result.best_val_acc:.1f}%")
    if target is not None:
        x = target.model_input()
        if keep is not None:
            x = x[:, :, keep]
        predictions = metrics.predict_logits(model, x).argmax(axis=1)
        report = metrics.accuracy_report(target.labels, predictions, target.snr_db)
        print(f"{args.evaluate}: accuracy {100 * report['accuracy']:.1f}% over {len(target)} frames")
