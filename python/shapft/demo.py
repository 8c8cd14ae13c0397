"""The report `examples/attack_defense.grc` prints when it has run."""

def demo_report(clean, attacked, defended, injector):
    """A table of the three classifier sinks' accuracies (clean, attacked, defended)."""
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
    return "\n".join(lines)
