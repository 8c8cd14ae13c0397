"""Recordings that stay on disk: run-length annotations, FrameFile (core.recording.
open_frames) against the recording in memory, the streamed RML2018.01a import (split by
source row, read in chunks), training, evaluation and attacks a batch at a time, and
bad input."""
import json

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from gnuradio.shapft import attacks
from gnuradio.shapft.core import artifacts, radioml_import, recording
from gnuradio.shapft.core.radioml import CLASSES
from gnuradio.shapft.learn import metrics, training
import shapft_testing

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated:DeprecationWarning")
torch.set_num_threads(1)


def grouped_recording(seed=0, length=32):
    """Frames in runs of one class and SNR, as datasets are written (a run of NaN SNRs too)."""
    labels = np.array([0, 0, 0, 3, 3, 3, 3, 3, 1, 1, 7, 7, 7, 7, 0, 0, 0], dtype=np.int64)
    snr = np.array([-4, -4, 2, 2, 2, 2, 6, 6, 6, 6, np.nan, np.nan, np.nan, 8, 8, 8, 8], dtype=np.float32)
    frames = shapft_testing.random_frames(len(labels), length, seed)
    return recording.Recording(frames, labels, snr, {"note": "grouped"})


def expected_runs(labels, snr):
    """(label, snr, count) of each run of equal consecutive (label, SNR), NaN equal to NaN."""
    runs = []
    for label, value in zip(labels.tolist(), snr.tolist()):
        key = (label, "nan" if np.isnan(value) else value)
        if runs and runs[-1][0] == key:
            runs[-1][1] += 1
        else:
            runs.append([key, 1])
    return [(key[0], key[1], count) for key, count in runs]


def assert_same_recording(a, b):
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.snr_db, b.snr_db)
    assert a.info == b.info


# --- the format: run-length annotations, old one-per-frame files ------------------------------

def test_runs_of_frames_share_an_annotation_and_read_back(tmp_path):
    rec = grouped_recording()
    meta = recording.write(tmp_path / "rec", rec, "grouped frames")
    annotations = json.loads(meta.read_text())["annotations"]
    runs = [(CLASSES.index(a["core:label"]), "nan" if np.isnan(a["shapft:snr_db"]) else a["shapft:snr_db"],
             a["core:sample_count"] // 32) for a in annotations]
    assert runs == expected_runs(rec.labels, rec.snr_db) and len(runs) == 8
    assert [a["core:sample_start"] for a in annotations] == [32 * s for s in (0, 2, 3, 6, 8, 10, 13, 14)]
    assert_same_recording(recording.read(meta), rec)
    # appended in pieces that cut runs, the same file
    with recording.writer(tmp_path / "pieces", 32, "grouped frames", {"note": "grouped"}) as out:
        for a, b in ((0, 2), (2, 2), (2, 5), (5, 11), (11, 17)):
            out.append(rec.frames[a:b], rec.labels[a:b], rec.snr_db[a:b])
    for suffix in (".sigmf-meta", ".sigmf-data"):
        assert (tmp_path / f"pieces{suffix}").read_bytes() == (tmp_path / f"rec{suffix}").read_bytes()


def test_one_annotation_per_frame_still_reads(tmp_path):
    rec = grouped_recording(seed=1)
    meta = recording.write(tmp_path / "old", rec, "one annotation per frame")
    content = json.loads(meta.read_text())
    content["annotations"] = [{"core:label": CLASSES[label], "core:sample_count": 32, "core:sample_start": 32 * i,
                               "shapft:snr_db": float(snr)}
                              for i, (label, snr) in enumerate(zip(rec.labels, rec.snr_db))]
    del content["global"]["shapft:frame_length"]   # the first annotation gives the frame length
    meta.write_text(json.dumps(content, indent=2))
    assert_same_recording(recording.read(meta), rec)
    frames = recording.open_frames(meta)
    np.testing.assert_array_equal(frames.batch(np.arange(len(rec))), rec.model_input())
    np.testing.assert_array_equal(frames.snr_db, rec.snr_db)


def test_annotations_that_do_not_cover_whole_frames_are_refused(tmp_path):
    meta = recording.write(tmp_path / "rec", grouped_recording(), "grouped frames")
    content = json.loads(meta.read_text())
    content["annotations"][1]["core:sample_count"] = 40          # 1.25 frames, then 2.75
    content["annotations"][2]["core:sample_start"] = 2 * 32 + 40
    content["annotations"][2]["core:sample_count"] = 3 * 32 - 8
    meta.write_text(json.dumps(content))
    for read in (recording.read, recording.open_frames):
        with pytest.raises(ValueError, match="annotations must cover back-to-back runs of whole frames of 32"):
            read(meta)


# --- FrameFile: frames from disk, batch by batch ------------------------------------------------

def test_frame_file_batches_equal_the_recording_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "SCAN_BYTES", 5 * 1024)     # the checking pass in 5-frame reads
    rec = shapft_testing.tone_recording(3, [0, 10, 20], seed=4)
    meta = recording.write(tmp_path / "rec", rec, "tones")
    frames = recording.open_frames(meta)
    assert len(frames) == len(rec) and frames.frame_length == 128 and frames.info == rec.info
    np.testing.assert_array_equal(frames.labels, rec.labels)
    np.testing.assert_array_equal(frames.snr_db, rec.snr_db)
    assert frames.data_sha256 == artifacts.sha256_file(recording.paths(meta)[1])
    x = rec.model_input()
    rng = np.random.default_rng(0)
    for index in (rng.permutation(len(rec))[:40], np.arange(10, 30), np.array([5, 5, 6, 4, 90, 0]),
                  np.array([], dtype=np.int64), torch.tensor([3, 1, 2])):
        np.testing.assert_array_equal(frames.batch(index), x[np.asarray(index, dtype=np.int64)])
    part = frames.subset(np.array([50, 7, 8, 9, 2]))
    np.testing.assert_array_equal(part.batch(np.array([4, 0, 2])), x[[2, 50, 8]])
    np.testing.assert_array_equal(part.labels, rec.labels[[50, 7, 8, 9, 2]])
    # a recording written over it after the check is refused, not read as the checked one
    recording.write(tmp_path / "rec", shapft_testing.tone_recording(3, [0, 10, 20], seed=5), "tones",
                    overwrite=True)
    with pytest.raises(ValueError, match=r"rec\.sigmf-data changed on disk after it was opened and checked"):
        part.batch(np.array([0]))


def test_invalid_frames_are_found_and_counted_in_the_streamed_pass(tmp_path, monkeypatch, shapft):
    monkeypatch.setattr(recording, "SCAN_BYTES", 4 * 1024)     # 4 frames per read: the bad ones in several
    rec = shapft_testing.tone_recording(2, [0, 10], seed=5)
    bad = {3: "nan", 4: "zero", 17: "inf", 43: "zero"}
    for index, reason in bad.items():
        rec.frames[index] = 0
        rec.frames[index, 7] = {"nan": np.nan, "inf": np.inf, "zero": 0}[reason]
    meta = recording.write(tmp_path / "rec", rec, "tones, some invalid")
    frames = recording.open_frames(meta)
    kept, check = recording.check_frames(frames, source="--data rec")
    assert check.reasons == bad and check.total == len(rec)
    assert check.kept.tolist() == [i for i in range(len(rec)) if i not in bad]
    np.testing.assert_array_equal(kept.batch(np.arange(len(kept))), rec.model_input()[check.kept])
    assert recording.check_frames(recording.read(meta))[1].reasons == bad
    with pytest.raises(ValueError, match="--data rec: frame 3 is invalid, NaN samples .4 invalid frames in all"):
        recording.check_frames(frames, "error", "--data rec")
    model = shapft_testing.write_model(tmp_path / "model.pt", "transformer_compact")
    code, out, err = shapft("evaluate", "--model", model, "--data", meta, "--json", tmp_path / "r.json", "--quiet")
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["frames"] == len(rec) - 4
    assert result["frames_invalid"] == {"nan": 1, "inf": 1, "zero": 2}
    assert result["invalid_frame_indices"] == {"nan": [3], "inf": [17], "zero": [4, 43]}


# --- the streamed RML2018.01a import ----------------------------------------------------------

@pytest.fixture
def rml2018a_file(tmp_path):
    """Rows sorted by class and SNR as in the dataset; 3 kept classes, 1 skipped; 6 rows a cell."""
    rng = np.random.default_rng(7)
    names, snrs = ["BPSK", "OOK", "FM", "64QAM"], [-10, 0, 12]
    classes = np.repeat([radioml_import.RML2018_CLASSES.index(name) for name in names], 6 * len(snrs))
    z = np.tile(np.repeat(snrs, 6), len(names)).reshape(-1, 1)
    x = (rng.standard_normal((len(classes), 1024, 2)) * 0.01).astype(np.float32)
    path = tmp_path / "GOLD_XYZ_OSC.0001_1024.hdf5"
    with h5py.File(path, "w") as f:
        f["X"], f["Y"], f["Z"] = x, np.eye(24, dtype=np.int64)[classes], z
    return path, x, np.array(radioml_import.RML2018_CLASSES)[classes], z[:, 0]


def test_streamed_import_splits_source_rows_in_chunks(tmp_path, rml2018a_file, monkeypatch):
    path, x, names, z = rml2018a_file
    read_rows = []
    read = radioml_import._rows
    monkeypatch.setattr(radioml_import, "_rows", lambda d, a, b, p: read_rows.append(b - a) or read(d, a, b, p))
    done = radioml_import.import_file(path, tmp_path / "out", fractions=(0.5, 1 / 3, 1 / 6), seed=3, chunk_rows=5)
    assert max(read_rows) == 5                                   # never more than a chunk of rows
    assert done.report == {"source": "RML2018.01a", "frames_in": 72, "cut_into": 8, "skipped": {"OOK": 18}}
    # every frame's bytes name the source row and piece it was cut from, rescaled to unit power
    source = {}
    for row in np.flatnonzero(names != "OOK"):
        pieces = radioml_import.normalise_power((x[row, :, 0] + 1j * x[row, :, 1]).reshape(8, 128))
        source.update({piece.tobytes(): (row, k) for k, piece in enumerate(pieces)})
    rows_of = {}
    for name, cells in (("train", 3), ("val", 2), ("test", 1)):
        split = recording.read(tmp_path / "out" / f"{name}.sigmf-meta")
        assert done.parts[name].frames == len(split) == 8 * cells * 9   # per (class, SNR) cell of 6 rows
        np.testing.assert_allclose(np.mean(np.abs(split.frames) ** 2, axis=1), 1.0, rtol=1e-5)
        found = [source[frame.tobytes()] for frame in split.frames]
        rows = np.array([row for row, _ in found]).reshape(-1, 8)
        assert np.all(rows == rows[:, :1]) and [k for _, k in found] == list(range(8)) * len(rows)
        rows_of[name] = rows[:, 0]
        assert np.all(np.diff(rows_of[name]) > 0)                 # in the file's order
        mapped = [CLASSES.index(radioml_import.RML2018_TO_2016[n]) for n in names[rows_of[name]]]
        np.testing.assert_array_equal(split.labels, np.repeat(mapped, 8))
        np.testing.assert_array_equal(split.snr_db, np.repeat(z[rows_of[name]], 8))
        meta = json.loads((tmp_path / "out" / f"{name}.sigmf-meta").read_text())
        assert len(meta["annotations"]) == 9                      # one run per (class, SNR)
    every = np.concatenate(list(rows_of.values()))
    assert len(every) == len(set(every.tolist())) == 54          # each kept row in exactly one split
    # the chunk size changes nothing
    again = radioml_import.import_file(path, tmp_path / "again", fractions=(0.5, 1 / 3, 1 / 6), seed=3)
    assert again.parts == done.parts
    for name in ("train", "val", "test"):
        assert ((tmp_path / "again" / f"{name}.sigmf-data").read_bytes()
                == (tmp_path / "out" / f"{name}.sigmf-data").read_bytes())


def test_import_reports_what_it_skipped_and_the_split_unit(tmp_path, rml2018a_file, shapft):
    path = rml2018a_file[0]
    code, out, err = shapft("import", path, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    assert "RML2018.01a: 72 frames read, 432 frames written" in out
    assert "skipped 18 frames of OOK (no RML2016.10a counterpart)" in out
    assert "train.sigmf-meta: 288 frames, 3 SNRs, classes BPSK, QAM64, WBFM" in out   # 4 of 6 rows a cell
    import argparse
    from gnuradio.shapft.cli import import_radioml
    parser = argparse.ArgumentParser()
    import_radioml.add_arguments(parser)
    for text in (parser.format_help(), import_radioml.__doc__):
        assert "RML2018.01a is split by source row" in " ".join(text.split())


# --- training, evaluation and attacks from disk --------------------------------------------------

def small_net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(2, 16, 8, stride=4), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
                         nn.Flatten(), nn.Linear(16 * 31, 11))


def test_training_from_disk_equals_training_from_arrays(tmp_path):
    train = shapft_testing.tone_recording(5, [0, 10], seed=1)
    train.frames[9] = 0                                           # left out by check_frames
    val = shapft_testing.tone_recording(2, [0, 10], seed=2)
    recording.write(tmp_path / "train", train, "tones")
    recording.write(tmp_path / "val", val, "tones")
    in_memory, _ = recording.check_frames(train)
    on_disk, _ = recording.check_frames(recording.open_frames(tmp_path / "train"))
    config = training.TrainConfig(epochs=3, batch_size=16, lr=3e-3, seed=4)
    results, states = [], []
    for train_xy, val_xy in (((in_memory.model_input(), in_memory.labels), (val.model_input(), val.labels)),
                             (on_disk, recording.open_frames(tmp_path / "val"))):
        model = small_net(0)
        results.append(training.fit(model, train_xy, val_xy, config, progress=False))
        states.append(model.state_dict())
    drop = lambda history: [{k: v for k, v in h.items() if k != "seconds"} for h in history]
    assert drop(results[0].history) == drop(results[1].history)
    for name, tensor in states[0].items():
        assert torch.equal(tensor, states[1][name]), name


def test_evaluate_and_attack_read_a_batch_at_a_time(tmp_path, shapft):
    rec = shapft_testing.tone_recording(2, [0, 10], seed=6)
    meta = recording.write(tmp_path / "rec", rec, "tones")
    model = shapft_testing.write_model(tmp_path / "model.pt", "transformer_compact")
    from gnuradio.shapft.core import model_file
    module = model_file.load(model).module
    in_memory = metrics.evaluate(module, rec, [("fgsm", 0.05), ("pgd", 0.05)], batch_size=7)
    on_disk = metrics.evaluate(module, recording.open_frames(meta), [("fgsm", 0.05), ("pgd", 0.05)], batch_size=7)
    assert in_memory == on_disk and len(on_disk["attacks"]) == 2
    # the attack's output, written batch by batch, is the attack of the whole array
    code, out, err = shapft("attack", "--model", model, "--data", meta, "--method", "pgd", "--eps", 0.05,
                            "--batch-size", 9, "--out", tmp_path / "adv", "--quiet")
    assert code == 0, err
    written = recording.read(tmp_path / "adv" / "rec.sigmf-meta")
    expected = attacks.attack_array(attacks.make("pgd", module, eps=0.05), rec.model_input(), rec.labels, 9)
    np.testing.assert_array_equal(written.model_input(), expected)
    np.testing.assert_array_equal(written.labels, rec.labels)
    assert written.info["attack"]["measured_psr_db"] == pytest.approx(
        metrics.measured_psr_db(rec.model_input(), expected), rel=1e-9)


# --- bad input: one line naming the file ---------------------------------------------------------

def test_bad_recordings_and_files_are_named_in_one_line(tmp_path, shapft, rml2018a_file):
    for name in ("train", "val"):
        recording.write(tmp_path / "data" / name, shapft_testing.tone_recording(2, [0], seed=8), "tones")
    data = tmp_path / "data" / "train.sigmf-data"
    content = data.read_bytes()
    data.write_bytes(content[:5000])
    code, _, err = shapft("train", "--arch", "transformer_compact", "--data", tmp_path / "data",
                          "--out", tmp_path / "m.pt", "--epochs", 1, "--quiet")
    assert code == 2
    assert f"{data}: truncated: 625 samples, annotations describe 2816" in shapft_testing.one_line_error(err, "train")
    data.write_bytes(content[:-1] + b"\x01")                     # same size, other bytes
    with pytest.raises(ValueError, match="train.sigmf-meta: not a valid SigMF recording .its core:sha512"):
        recording.open_frames(data)
    # a file cut short after it was opened is named at the next batch
    data.write_bytes(content)
    frames = recording.open_frames(data)
    data.write_bytes(content[:4096])
    with pytest.raises(ValueError, match=f"{data} changed on disk after it was opened and checked"):
        frames.batch(np.array([1, 20]))
    # an HDF5 file cut short
    path = rml2018a_file[0]
    path.write_bytes(path.read_bytes()[:100000])
    code, _, err = shapft("import", path, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and f"{path}: not an HDF5 file" in shapft_testing.one_line_error(err, "import")


def test_a_failing_write_names_the_recording(tmp_path):
    # a full disk mid-recording: the error says which recording, and nothing is published
    class FullDisk:
        def write(self, data):
            raise OSError(28, "No space left on device")

    out = recording.FrameWriter(FullDisk(), 32, tmp_path / "train.sigmf-meta")
    rec = grouped_recording()
    with pytest.raises(OSError, match=r"^\[Errno 28\] cannot write .*train\.sigmf-data: No space left on device$"):
        out.append(rec.frames, rec.labels, rec.snr_db)
    assert out.frames == 0 and not list(tmp_path.iterdir())
