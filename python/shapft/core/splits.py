"""Stratified selection of frames: every (class, SNR) cell of a dataset is split or
sampled on its own, so each part keeps the whole's balance of classes and SNRs."""
import numpy as np


def cells(labels, snr_db):
    """{(class index, SNR rounded to 1 dB): sorted frame indices}, keys in ascending order."""
    keys = np.asarray(labels, dtype=np.int64) * 1000 + np.round(np.asarray(snr_db)).astype(np.int64)
    return {(int(key) // 1000, int(key) % 1000): np.flatnonzero(keys == key) for key in np.unique(keys)}


def stratified_split(labels, snr_db, fractions, rng):
    """Indices (sorted) of len(fractions) disjoint parts covering every frame: each cell's
    frames are shuffled by `rng` and cut at the rounded cumulative fractions."""
    fractions = np.asarray(fractions, dtype=float)
    if np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions.tolist()}")
    parts = [[] for _ in fractions]
    for members in cells(labels, snr_db).values():
        members = rng.permutation(members)
        bounds = np.round(np.cumsum(fractions) * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, bounds[:-1])):
            part.append(chunk)
    return [np.sort(np.concatenate(part)).astype(np.int64) for part in parts]


def stratified_subset(labels, snr_db, n, seed=0):
    """Indices (sorted) of about n frames, the same number from every cell; all frames
    when n <= 0 or n >= their number."""
    if n <= 0 or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    groups = cells(labels, snr_db)
    per_cell = max(1, n // len(groups))
    chosen = [i for members in groups.values() for i in rng.permutation(members)[:per_cell]]
    return np.sort(np.asarray(chosen, dtype=np.int64))


def random_subset(count, n, seed, stream):
    """Indices (sorted) of n of `count` frames drawn uniformly without replacement by
    numpy's Generator seeded [seed, stream] (a study's own stream, so that its draw does
    not follow another's); all frames when n <= 0 or n >= count."""
    if n <= 0 or n >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng([seed, stream]).choice(count, n, replace=False))
