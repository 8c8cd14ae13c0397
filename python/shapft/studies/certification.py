"""`shapft certify`: a model smoothed with Gaussian noise, certified frame by frame
(learn.smoothing), and its certified accuracy against the L2 radius, in PSR."""
from pathlib import Path

import numpy as np

from ..core import artifacts, budget, splits
from . import stages
from .stages import load_model, read_recording, run_device

RADII_PSR_DB = tuple(float(p) for p in np.arange(-45.0, -9.0, 1.0))   # the curve's radii, as PSR
HIGH_SNR_DB = 10.0
REFERENCE_PSR_DB = -25.0   # the radius the summary names


def certify_recording(model, data, out, sigma_psr_db, n0=100, n=1000, alpha=0.001, frames=500, seed=0,
                      batch_size=1000, precision="fp32", invalid_frames="skip", progress=True, device="auto"):
    """Certify `frames` frames of the recording `data` (drawn at random; 0: all) for the
    model file `model` smoothed with noise of sigma_psr_db, on `device`; write
    OUT/certify.json and OUT/certified_accuracy.png. Returns the summary dict."""
    import torch
    from ..learn import metrics, smoothing

    try:
        sigma = smoothing.sigma_from_psr_db(sigma_psr_db)
    except ValueError as err:
        raise ValueError(f"--sigma-psr-db: {err}") from None
    device = run_device(device)
    loaded = load_model(model, "--model").to(device)
    rec, check = read_recording(data, "--data", loaded, invalid_frames)
    rec = rec.subset(splits.random_subset(len(rec), frames, seed, 0xCE7))
    classifier = stages.classifier(loaded, rec.frame_length)
    out = Path(out)
    artifacts.writable_dir(out)
    x = torch.from_numpy(rec.model_input())
    classes = len(loaded.classes)
    chunks = range(0, len(x), 50)
    if progress:
        from tqdm import tqdm
        chunks = tqdm(chunks, desc=f"certify (sigma PSR {sigma_psr_db:g} dB, n {n})", unit="50 frames")
    predicted, radius = [], []
    for start in chunks:
        p, r = smoothing.certify(classifier, x[start:start + 50], sigma, n0, n, classes, alpha, seed + start,
                                 batch_size, precision)
        predicted.append(p)
        radius.append(r)
    predicted, radius = np.concatenate(predicted), np.concatenate(radius)
    base = metrics.predict_logits(classifier, rec.model_input(), precision=precision).argmax(1)
    radii = [budget.psr_db_to_eps(psr, "l2", rec.frame_length) for psr in RADII_PSR_DB]
    high = rec.snr_db >= HIGH_SNR_DB
    reference = budget.psr_db_to_eps(REFERENCE_PSR_DB, "l2", rec.frame_length)

    def summary_of(mask):
        correct = predicted[mask] == rec.labels[mask]
        return {"frames": int(mask.sum()), "base_clean_accuracy": float(np.mean(base[mask] == rec.labels[mask])),
                "smoothed_clean_accuracy": float(np.mean(correct)),
                "abstained": float(np.mean(predicted[mask] == smoothing.ABSTAIN)),
                "certified_accuracy": smoothing.certified_accuracy(predicted[mask], radius[mask], rec.labels[mask],
                                                                   radii),
                f"certified_accuracy_at_psr{REFERENCE_PSR_DB:g}": smoothing.certified_accuracy(
                    predicted[mask], radius[mask], rec.labels[mask], [reference])[0]}

    results = {"model": loaded.path.name, "model_sha256": loaded.sha256, "data": str(data),
               "sigma_psr_db": sigma_psr_db, "sigma": sigma, "n0": n0, "n": n, "alpha": alpha, "seed": seed,
               "precision": precision, "radii_psr_db": list(RADII_PSR_DB), "radii_l2": [float(r) for r in radii],
               "all": summary_of(np.ones(len(rec), bool)),
               "high_snr": summary_of(high) if high.any() else None,
               "frames_invalid": check.counts(),
               "per_frame": {"label": rec.labels.tolist(), "snr_db": rec.snr_db.tolist(),
                             "predicted": predicted.tolist(), "radius": radius.tolist()}}
    artifacts.write_json(out / "certify.json", results)
    _figure(results, out / "certified_accuracy.png")
    return results


def _figure(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("all", "all frames"), ("high_snr", f"SNR >= {HIGH_SNR_DB:g} dB")):
        if results[key]:
            ax.plot(results["radii_psr_db"], [100 * a for a in results[key]["certified_accuracy"]],
                    label=f"{label} (smoothed clean {100 * results[key]['smoothed_clean_accuracy']:.1f} %)")
    ax.axvline(REFERENCE_PSR_DB, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="certified L2 radius, as PSR (dB)", ylabel="certified accuracy (%)", ylim=(0, 100),
           title=f"{results['model']} smoothed at noise PSR {results['sigma_psr_db']:g} dB (n = {results['n']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
