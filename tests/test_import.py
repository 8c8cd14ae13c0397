"""`shapft import`: RadioML 2016.10a pickles and 2018.01a HDF5 files, in their exact
formats, made small here, converted to unit-power SigMF."""
import os
import pickle

import h5py
import numpy as np
import pytest

from gnuradio.shapft.core import radioml_import, recording
from gnuradio.shapft.core.radioml import CLASSES


def radioml_scale(frames):
    """RadioML 2016.10a's own normalisation: divide by the sum of magnitudes."""
    return frames / np.sum(np.abs(frames), axis=-1, keepdims=True)


@pytest.fixture
def rml2016a_pickle(tmp_path):
    rng = np.random.default_rng(0)
    data = {}
    for name in ("QPSK", "WBFM", "8PSK"):
        for snr in (-6, 0, 12):
            frames = rng.standard_normal((10, 128)) + 1j * rng.standard_normal((10, 128))
            frames = radioml_scale(frames)
            data[(name, snr)] = np.stack([frames.real, frames.imag], axis=1).astype(np.float32)
    path = tmp_path / "RML2016.10a_dict.pkl"
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)      # the Python 2 cPickle protocol of the original
    return path, data


@pytest.fixture
def rml2018a_hdf5(tmp_path):
    rng = np.random.default_rng(1)
    n = 48
    classes = rng.integers(0, len(radioml_import.RML2018_CLASSES), n)
    classes[:4] = [radioml_import.RML2018_CLASSES.index(c) for c in ("BPSK", "16QAM", "OOK", "FM")]
    x = rng.standard_normal((n, 1024, 2)).astype(np.float32) * 0.01
    y = np.eye(len(radioml_import.RML2018_CLASSES), dtype=np.int64)[classes]
    z = rng.choice(np.arange(-20, 31, 2), size=(n, 1)).astype(np.int64)
    path = tmp_path / "GOLD_XYZ_OSC.0001_1024.hdf5"
    with h5py.File(path, "w") as f:
        f["X"], f["Y"], f["Z"] = x, y, z
    return path, x, classes, z


def test_rml2016a_pickle(tmp_path, shapft, rml2016a_pickle):
    path, data = rml2016a_pickle
    code, out, err = shapft("import", path, "--out", tmp_path / "out", "--seed", 2)
    assert code == 0, err
    parts = {s: recording.read(tmp_path / "out" / f"{s}.sigmf-meta") for s in ("train", "val", "test")}
    assert [len(p) for p in parts.values()] == [54, 18, 18]     # 60/20/20 of 10 per (class, SNR)
    merged = np.concatenate([p.frames for p in parts.values()])
    np.testing.assert_allclose(np.mean(np.abs(merged) ** 2, axis=1), 1.0, rtol=1e-5)
    # Every source frame arrives once, rescaled, under its own label and SNR.
    train = parts["train"]
    first = train.frames[0]
    name, snr = CLASSES[train.labels[0]], int(train.snr_db[0])
    source = data[(name, snr)]
    source = source[:, 0] + 1j * source[:, 1]
    scales = np.sum(np.conj(source) * first, axis=1) / np.sum(np.abs(source) ** 2, axis=1)
    match = np.argmax(np.abs(scales))
    np.testing.assert_allclose(first, scales[match] * source[match], atol=1e-5)


def test_rml2016a_pickle_refuses_code(tmp_path, shapft):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({("QPSK", 0): Exploit()}, protocol=2))
    code, _, err = shapft("import", path, "--out", tmp_path / "out")
    assert code != 0 and "refusing to load" in err


def test_rml2016a_wrong_shape_refused(tmp_path, shapft):
    path = tmp_path / "wrong.pkl"
    path.write_bytes(pickle.dumps({("QPSK", 0): np.zeros((4, 128, 2), np.float32)}, protocol=2))
    code, _, err = shapft("import", path, "--out", tmp_path / "out")
    assert code != 0 and "has shape (4, 128, 2); expected [N, 2, 128]" in err


def test_rml2018a_hdf5(tmp_path, shapft, rml2018a_hdf5):
    path, x, classes, z = rml2018a_hdf5
    code, out, err = shapft("import", path, "--out", tmp_path / "out", "--split", "1,0,0")
    assert code == 0, err
    data = recording.read(tmp_path / "out" / "train.sigmf-meta")
    names = np.array(radioml_import.RML2018_CLASSES)[classes]
    kept = np.array([n in radioml_import.RML2018_TO_2016 for n in names])
    assert len(data) == 8 * kept.sum()
    expected = sorted(CLASSES.index(radioml_import.RML2018_TO_2016[n]) for n in names[kept] for _ in range(8))
    assert sorted(data.labels.tolist()) == expected
    np.testing.assert_allclose(np.mean(np.abs(data.frames) ** 2, axis=1), 1.0, rtol=1e-5)
    skipped = {n: int(np.sum(names == n)) for n in set(names[~kept])}
    for name, count in skipped.items():
        assert f"skipped {count} frames of {name}" in out
    # The BPSK frame (row 0) becomes eight consecutive 128-sample frames.
    bpsk = x[0, :, 0] + 1j * x[0, :, 1]
    pieces = bpsk.reshape(8, 128)
    pieces = pieces / np.sqrt(np.mean(np.abs(pieces) ** 2, axis=1, keepdims=True))
    rows = [np.flatnonzero(np.all(np.isclose(data.frames, p, atol=1e-5), axis=1)) for p in pieces]
    assert all(len(r) == 1 for r in rows) and all(data.snr_db[r[0]] == z[0, 0] for r in rows)


def test_rml2018a_wrong_shape_refused(tmp_path, shapft):
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:
        f["X"] = np.zeros((4, 1000, 2), np.float32)
        f["Y"] = np.zeros((4, 24))
        f["Z"] = np.zeros((4, 1))
    code, _, err = shapft("import", path, "--out", tmp_path / "out")
    assert code != 0 and "X has shape (4, 1000, 2)" in err
