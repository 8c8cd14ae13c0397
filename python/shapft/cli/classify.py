"""Classify a recording the way a live flowgraph classifies a radio: SigMF Source ->
Stream Framer (frequency shift, resampling to the model's rate, framing, energy gate,
unit power) -> Classifier Sink, and print what the framer passed and, where the
recording's annotations carry labels, the accuracy per class.

--reference adds the same classes straight from channel_model_source at the
recording's SNR (`shapft record` notes it), the figure a recording's accuracy is
judged by: a framer that loses nothing lands within a few points of it.

Example: shapft classify --recording rec/all_1msps --model examples/models/cnn_lstm.pt
         --frequency-shift=-20e3 --reference   (with "=": argparse reads -20e3 as an option)
"""
import math

from . import CommandError, common


def add_arguments(parser):
    parser.add_argument("--recording", required=True, metavar="BASE",
                        help="SigMF recording (cf32_le; base name, .sigmf-meta or .sigmf-data)")
    parser.add_argument("--model", required=True, help="model file (TorchScript, shapft train)")
    parser.add_argument("--frequency-shift", type=float, default=0.0,
                        help="Hz added to the stream's frequencies first: minus the signal's offset (default 0)")
    parser.add_argument("--hop", type=int, default=0,
                        help="samples at the model's rate between frame starts; 0 = the frame length (default 0)")
    parser.add_argument("--gate-db", type=float, default=None,
                        help="energy gate, dB above the running noise floor (default 1.0; docs/live.md)")
    parser.add_argument("--no-gate", action="store_true", help="classify every frame, silence too")
    parser.add_argument("--reference", action="store_true",
                        help="also classify the same classes from channel_model_source at the recording's SNR")
    parser.add_argument("--reference-frames", type=int, default=0,
                        help="--reference: frames per class; 0 = as many as the recording gave (default 0)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    common.add_seed(parser, default=0)
    common.add_device(parser)


def run(args):
    from ..core import framing, stream_recording
    from ..studies import live
    if args.no_gate and args.gate_db is not None:
        raise CommandError("--gate-db: cannot be given with --no-gate")
    gate_db = None if args.no_gate else (framing.DEFAULT_GATE_DB if args.gate_db is None else args.gate_db)
    if args.reference_frames < 0:
        raise CommandError(f"--reference-frames: must be >= 0, got {args.reference_frames}")
    try:
        info = stream_recording.read_info(args.recording, "--recording")
        result = live.classify_recording(args.recording, args.model, args.frequency_shift, args.hop, gate_db,
                                         device=args.device)
    except ValueError as err:   # the blocks name their parameters; say which option it was
        raise CommandError(_option_named(str(err))) from None
    gate = "off" if gate_db is None else f"{gate_db:g} dB"
    print(f"{info.meta_path}: {info.length} samples at {info.sample_rate:g} Hz")
    print(f"stream framer: {result['frames_cut']} frames cut, {result['frames_passed']} passed, "
          f"{result['frames_gated']} below the gate ({gate}), {result['frames_invalid']} invalid; "
          f"noise floor {result['noise_floor_db']:.1f} dB")
    print(f"classifier sink: {result['summary']}")
    reference = None
    if args.reference:
        snr = info.info.get("snr_db")
        if snr is None:
            raise CommandError("--reference: the recording does not say its SNR (shapft:snr_db; shapft record writes it)")
        classes = list(result["per_class"])
        if not classes:
            raise CommandError("--reference: the recording has no labelled frames to compare")
        frames = args.reference_frames or max(count for count, _ in result["per_class"].values())
        reference = live.reference_accuracy(args.model, classes, float(snr), frames, args.seed, device=args.device)
        print(f"reference: channel_model_source at {snr:g} dB, {frames} frames per class: "
              f"accuracy {100 * reference['accuracy']:.1f}%")
    if result["per_class"]:
        gate_by_class = result["gate_by_class"]
        print(f"{'class':<8} {'frames':>6} {'gate passed':>11} {'accuracy':>9}"
              + (f" {'reference':>9} {'difference':>10}" if reference else ""))
        for name, (frames, accuracy) in result["per_class"].items():
            cut, passed = gate_by_class.get(name, (0, 0))
            gate = f"{100 * passed / cut:.1f}%" if cut else "n/a"
            line = f"{name:<8} {frames:>6} {gate:>11} {100 * accuracy:>8.1f}%"
            if reference and name in reference["per_class"]:
                ref = reference["per_class"][name][1]
                line += f" {100 * ref:>8.1f}% {100 * (accuracy - ref):>+9.1f}"
            print(line)
    if args.json:
        from ..core import artifacts
        payload = {"recording": str(info.meta_path), "model": args.model, "frequency_shift": args.frequency_shift,
                   "hop": args.hop, "gate_db": gate_db, **result, "reference": reference}
        artifacts.write_json(args.json, _finite(payload))


def _finite(value):
    """value with every non-finite float as None (JSON has no NaN or infinity)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _option_named(text):
    """A block's 'parameter: problem' as the option a user typed."""
    names = {"recording_path": "--recording", "model_path": "--model", "frequency_shift": "--frequency-shift",
             "device": "--device",
             "hop": "--hop", "gate_db": "--gate-db", "samp_rate": "--recording (its sample rate)"}
    name, _, rest = text.partition(": ")
    return f"{names[name]}: {rest}" if name in names else text
