"""What GNU Radio Companion evaluates: port sizes from model, mask and perturbation
files (read without loading torch), the shipped models by name, and the demo's closing
table."""
from ..core import masks, model_file, perturbation_file, shipped


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


def demo_report(clean, attacked, defended, injector, detectors=()):
    """A table of the three classifier sinks' accuracies (clean, attacked, defended),
    the attack detectors' alarm rates (detectors: (on the clean branch, on the attacked
    branch)), then any errors the blocks reported."""
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
        lines.append(f"SHAP-FT recovers {100 * recovered:+.1f} points of the {100 * lost:.1f} the attack took")
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
