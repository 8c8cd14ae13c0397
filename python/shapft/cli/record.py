"""Write a SigMF stream recording of the shipped transmitters, as a radio would deliver
them: a continuous capture at --sample-rate, shifted by --offset-hz, with AWGN for
--snr-db in the model's 200 kHz band around the signal.

Each modulation in turn, --seconds each, from independent transmitter and channel
pairs (channel_model_source's fading, frequency and timing drift; one pair per 20
frames' worth, because the fading is slow; --channel awgn leaves the channel out),
resampled from 200 kHz. Annotations mark each piece with its class (core:label) and SNR
(shapft:snr_db), so `shapft classify` and a Classifier Sink can score a flowgraph that
plays it (examples/live_classify.grc). The same seed gives the same bytes.

Example: shapft record --out rec/qpsk_1msps --sample-rate 1e6 --offset-hz 20e3 --snr-db 18
"""
from . import CommandError, common
from ..core.radioml import CLASSES


def add_arguments(parser):
    parser.add_argument("--out", required=True, metavar="BASE",
                        help="output base name: writes BASE.sigmf-meta and BASE.sigmf-data")
    parser.add_argument("--modulations", default=",".join(CLASSES),
                        help="comma-separated class names (default: all 11)")
    parser.add_argument("--sample-rate", type=float, default=1e6,
                        help="sample rate of the recording in Hz (default 1e6)")
    parser.add_argument("--offset-hz", type=float, default=0.0,
                        help="carrier offset of the signal in the recording, Hz (default 0)")
    parser.add_argument("--snr-db", type=float, default=18.0,
                        help="SNR in dB in the model's 200 kHz band around the signal (default 18)")
    parser.add_argument("--channel", choices=["radioml", "awgn"], default="radioml",
                        help="radioml: channel_model_source's fading, drift and multipath (default); "
                             "awgn: the transmitters and the noise only")
    parser.add_argument("--noise-only", action="store_true",
                        help="no transmitter: the noise alone, --seconds long (an empty channel, for the energy gate)")
    parser.add_argument("--seconds", type=float, default=0.2,
                        help="seconds of each modulation (default 0.2)")
    common.add_seed(parser, default=1)
    parser.add_argument("--force", action="store_true", help="overwrite an existing recording")


def run(args):
    import math
    from ..core import framing
    from ..core.radioml import SAMPLE_RATE_HZ
    from ..studies import live
    modulations = [] if args.noise_only else [m.strip() for m in args.modulations.split(",") if m.strip()]
    unknown = [m for m in modulations if m not in CLASSES]
    if (not modulations and not args.noise_only) or unknown:
        raise CommandError(f"--modulations: unknown {', '.join(unknown) or 'empty list'}; "
                           f"expected names from {', '.join(CLASSES)}")
    try:
        framing.resampling_ratio(SAMPLE_RATE_HZ, args.sample_rate)
    except (ValueError, TypeError) as err:
        raise CommandError(f"--sample-rate: {str(err).split(': ', 1)[1]}") from None
    if not (math.isfinite(args.offset_hz) and abs(args.offset_hz) + 100e3 <= args.sample_rate / 2):
        raise CommandError(f"--offset-hz: the signal's 200 kHz band must fit in the recording: "
                           f"|offset| <= {args.sample_rate / 2 - 100e3:g} Hz at {args.sample_rate:g} Hz")
    if not math.isfinite(args.snr_db):
        raise CommandError(f"--snr-db: must be finite, got {args.snr_db}")
    if not (args.seconds > 0 and math.isfinite(args.seconds)):
        raise CommandError(f"--seconds: must be > 0, got {args.seconds}")
    path = live.write_recording(args.out, modulations, args.snr_db, args.sample_rate, args.offset_hz,
                                args.seconds, args.seed, overwrite=args.force, channel=args.channel)
    from ..core import stream_recording
    info = stream_recording.read_info(path, "--out")
    print(f"wrote {path}: {info.length} samples at {args.sample_rate:g} Hz, "
          f"{len(modulations) if modulations else 'no'} classes, "
          f"offset {args.offset_hz:g} Hz, SNR {args.snr_db:g} dB (200 kHz band)")
