"""Export a model file to another format: ONNX, for ONNX Runtime.

Writes OUT.onnx: the model's forward as an ONNX graph at opset 17, float32, input
`frames` [batch, 2, L] and output `logits` [batch, C], the batch dimension dynamic,
carrying the model file's metadata (class names, frame length, mask, provenance, ...)
and a record of the export (docs/formats.md). The classifier_sink block runs it with
ONNX Runtime; attacks, SHAP and training need the TorchScript model file.

Before writing, the export is checked: its logits in ONNX Runtime must equal the
TorchScript model's within --tolerance on --frames random unit-power frames (all in one
batch, and the first alone); a larger difference is refused and nothing is written.
"""
from . import CommandError, common


def add_arguments(parser):
    from ..core import onnx_file
    parser.add_argument("--format", required=True, choices=["onnx"], help="the format to write (onnx)")
    parser.add_argument("--model", required=True, metavar="MODEL.pt", help="the model file to export")
    parser.add_argument("--out", required=True, metavar="OUT.onnx", help="the file to write")
    parser.add_argument("--frames", type=int, default=onnx_file.CHECK_FRAMES,
                        help=f"random frames the export is checked on (default {onnx_file.CHECK_FRAMES})")
    parser.add_argument("--tolerance", type=float, default=onnx_file.TOLERANCE,
                        help="largest |logit difference| from the TorchScript model allowed "
                             f"(default {onnx_file.TOLERANCE:g})")
    common.add_seed(parser)
    parser.add_argument("--force", action="store_true", help="overwrite --out")


def run(args):
    from ..core import onnx_file
    from ..studies import stages

    if args.frames < 1:
        raise CommandError(f"--frames: must be >= 1, got {args.frames}")
    if not args.tolerance >= 0:
        raise CommandError(f"--tolerance: must be >= 0, got {args.tolerance}")
    if not onnx_file.is_onnx_path(args.out):
        raise CommandError(f"--out {args.out}: an ONNX model file's name ends in {onnx_file.SUFFIX} "
                           "(classifier_sink tells the formats apart by it)")
    model = stages.load_model(args.model, "--model")   # refused here, before the export
    out = stages.writable_output(args.out, "--out", force=args.force)
    try:
        record = onnx_file.export(model, out, frames=args.frames, seed=args.seed, tolerance=args.tolerance)
    except ValueError as err:
        raise CommandError(f"--model: {err}") from None
    check = record["check"]
    print(f"wrote {out}: ONNX opset {record['opset']}, {model.arch}, {len(model.classes)} classes, "
          f"frames of {model.frame_length}; logits within {check['max_abs_logit_error']:.2g} of TorchScript's "
          f"on {check['frames']} random frames (tolerance {check['tolerance']:g})")
