"""What GNU Radio Companion evaluates: port sizes from model, mask and perturbation
files (read without loading torch), the shipped models by name, and the demo's closing
table."""
from ..core import masks, model_file, perturbation_file, shipped, stream_recording
from ..core.radioml import FRAME_LENGTH


def model_frame_length(model_path):
    """Vector length a model classifies (classifier_sink's input; 128 - m for a SHAP-FT model)."""
    return model_file.frame_length_of(model_path)


def model_full_frame_length(model_path):
    """Vector length of the frames before any deletion (fgsm_injector's ports)."""
    return model_file.full_frame_length_of(model_path)


def detector_frame_length(detector_path):
    """Vector length of the frames an attack detector scores (attack_detector's ports)."""
    return int(model_file.read_metadata(detector_path)["frame_length"])


def mask_input_length(mask_path):
    """negative_point_mask's input vector length."""
    return masks.load(mask_path)["frame_length"]


def mask_output_length(mask_path, mode="drop"):
    """negative_point_mask's output vector length."""
    return masks.output_length(mask_path, mode)


def perturbation_length(perturbation_path):
    """Vector length of a universal perturbation file (fgsm_injector's ports with method uap)."""
    return perturbation_file.load(perturbation_path)[0].shape[1]


def shipped_model(name):
    """Path of a shipped model or mask by file name, e.g. shipped_model('cnn_lstm.pt')."""
    return shipped.model(name)


def demo_report(clean, attacked, defended, injector, detectors=(), defence="SHAP-FT"):
    """A table of the three classifier sinks' accuracies (clean, attacked, defended),
    the attack detectors' alarm rates (detectors: (on the clean branch, on the attacked
    branch)), then any errors the blocks reported. `defence` names the defended branch."""
    attack = injector.attack
    lines = [f"gr-shapft attack/defence demo: {attack.describe()}",
             f"{'branch':<10} {'frames in':>9} {'scored':>7} {'invalid':>7} {'accuracy':>9}"]
    for sink in (clean, attacked, defended):
        accuracy = sink.accuracy()
        text = "n/a" if accuracy != accuracy else f"{100 * accuracy:.1f}%"
        lines.append(f"{sink.name:<10} {sink.frames_in():>9} {sink.frames_scored():>7} "
                     f"{sink.frames_invalid():>7} {text:>9}")
    recovered = defended.accuracy() - attacked.accuracy()
    lost = clean.accuracy() - attacked.accuracy()
    if lost > 0:
        lines.append(f"{defence} recovers {100 * recovered:+.1f} points of the {100 * lost:.1f} the attack took")
    named_detectors = list(zip(("clean", "attacked"), detectors))
    for branch, detector in named_detectors:
        rate = detector.alarm_rate()
        text = "n/a" if rate != rate else f"{100 * rate:.1f}%"
        meaning = "false alarms" if branch == "clean" else "attacked frames flagged"
        lines.append(f"attack detector on the {branch} branch: {text} {meaning} "
                     f"({detector.frames_scored()} frames, threshold for "
                     f"{100 * detector.false_alarm_rate():.0f}% calibrated false alarms)")
    blocks = [("injector", injector), *((sink.name, sink) for sink in (clean, attacked, defended)),
              *((f"{branch} detector", detector) for branch, detector in named_detectors)]
    for name, block in blocks:
        lines += [f"error in {name}: {text}" for text in block.errors()]
    return "\n".join(lines)


def framer_frame_length(model_path):
    """stream_framer's output vector length: the model's full frame length (128 when no model)."""
    return model_file.full_frame_length_of(model_path) if model_path else FRAME_LENGTH


def recording_sample_rate(recording_path):
    """The sample rate of a SigMF recording (core:sample_rate), for a flowgraph's samp_rate."""
    return stream_recording.read_info(recording_path, "recording_path").sample_rate


def live_report(framer, sink):
    """What a live-classification flowgraph saw: the framer's counts, the sink's, and where
    the stream carried labels (a recording's annotations), the accuracy per class."""
    floor = framer.noise_floor_db()
    lines = [f"stream framer: {framer.frames_cut()} frames cut, {framer.frames_passed()} passed, "
             f"{framer.frames_gated()} below the energy gate, {framer.frames_invalid()} invalid; "
             f"noise floor {floor:.1f} dB",
             f"classifier sink: {sink.summary()}"]
    confusion = sink.confusion_matrix()
    if confusion.sum():
        lines.append(f"{'class':<8} {'frames':>6} {'accuracy':>9}")
        for i, name in enumerate(sink.classes):
            if confusion[i].sum():
                lines.append(f"{name:<8} {confusion[i].sum():>6} {100 * confusion[i, i] / confusion[i].sum():>8.1f}%")
    elif sink.frames_scored():
        lines.append("frames per predicted class: " + ", ".join(
            f"{name} {n}" for name, n in zip(sink.classes, sink.predicted_counts().tolist()) if n))
    lines += [f"error in {name}: {text}" for name, block in (("stream framer", framer), ("classifier sink", sink))
              for text in block.errors()]
    return "\n".join(lines)
