"""`shapft generate`: the tiny preset's three SigMF sets, reproducibility, bad input."""
import subprocess

import numpy as np
import pytest
import sigmf

from gnuradio.shapft.studies import generate
from gnuradio.shapft.core import recording
from gnuradio.shapft.core.radioml import CLASSES, SNRS_DB


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from gnuradio.shapft.cli import main
    out = tmp_path_factory.mktemp("tiny")
    assert main(["generate", "--preset", "tiny", "--out", str(out), "--seed", "1", "--quiet"]) == 0
    return out


@pytest.mark.parametrize("split,total,per_class", [("tiny-train", 7700, 700), ("tiny-test", 330, 30),
                                                   ("adv-data", 6600, 600)])
def test_tiny_preset_splits(tiny, split, total, per_class):
    meta = tiny / f"{split}.sigmf-meta"
    handle = sigmf.fromfile(str(meta))        # verifies core:sha512 against the data
    handle.validate()
    annotations = handle.get_annotations()
    assert len(annotations) == total
    assert all(a["core:sample_count"] == 128 for a in annotations)
    assert {"name": "shapft", "version": "1.0.0", "optional": True} in handle.get_global_field("core:extensions")
    data = recording.read(meta)
    assert np.bincount(data.labels, minlength=len(CLASSES)).tolist() == [per_class] * len(CLASSES)
    assert sorted(set(data.snr_db.tolist())) == [float(s) for s in SNRS_DB]
    power = np.mean(np.abs(data.frames) ** 2, axis=1)
    assert np.max(np.abs(power - 1.0)) < 1e-3


def test_tiny_test_spreads_snrs_per_class(tiny):
    data = recording.read(tiny / "tiny-test.sigmf-meta")
    for label in range(len(CLASSES)):
        counts = np.unique(data.snr_db[data.labels == label], return_counts=True)[1]
        assert len(counts) == len(SNRS_DB) and set(counts.tolist()) <= {1, 2}


def test_gnuradio_file_source_replays_data(tiny):
    from gnuradio import blocks, gr
    tb = gr.top_block()
    src = blocks.file_source(gr.sizeof_gr_complex * 128, str(tiny / "tiny-test.sigmf-data"), False)
    sink = blocks.vector_sink_c(128)
    tb.connect(src, sink)
    tb.run()
    replayed = np.asarray(sink.data(), dtype=np.complex64).reshape(-1, 128)
    np.testing.assert_array_equal(replayed, recording.read(tiny / "tiny-test.sigmf-meta").frames)


def test_same_seed_same_bytes(tmp_path, shapft):
    args = ["generate", "--preset", "custom", "--frames", "3", "--modulations", "QPSK,AM-DSB,WBFM",
            "--snrs=-4,12", "--quiet"]
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert shapft(*args, "--out", tmp_path / name, "--seed", seed)[0] == 0
    read = lambda d, ext: (tmp_path / d / f"custom.sigmf-{ext}").read_bytes()
    assert read("a", "data") == read("b", "data") and read("a", "meta") == read("b", "meta")
    assert read("a", "data") != read("c", "data")


def test_setting_seeds_do_not_depend_on_order():
    counts = {("BPSK", 0.0): 2, ("GFSK", 10.0): 2}
    both = generate.generate_split(counts, 3, "train", workers=1, progress=False)
    alone = generate.generate_split({("GFSK", 10.0): 2}, 3, "train", workers=1, progress=False)
    np.testing.assert_array_equal(both.frames[2:], alone.frames)


@pytest.mark.parametrize("args,message", [
    (["--preset", "custom", "--frames", "2", "--modulations", "QAM256"], "unknown modulation 'QAM256'"),
    (["--preset", "custom", "--frames", "2", "--snrs", ","], "snrs_db: the list is empty"),
    (["--preset", "custom", "--frames", "0"], "--frames must be >= 1"),
])
def test_bad_input_refused(tmp_path, shapft, args, message):
    code, _, err = shapft("generate", "--out", tmp_path, *args)
    assert code != 0
    assert message in err and len(err.strip().splitlines()) == 1


def test_existing_output_needs_force(tmp_path, shapft):
    args = ["generate", "--preset", "custom", "--frames", "1", "--modulations", "BPSK", "--snrs", "0",
            "--out", tmp_path, "--quiet"]
    assert shapft(*args)[0] == 0
    code, _, err = shapft(*args)
    assert code != 0 and "exists; pass --force" in err
    assert shapft(*args, "--force")[0] == 0


def test_unwritable_output_refused(tmp_path, shapft_executable):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = subprocess.run([shapft_executable, "generate", "--preset", "tiny", "--out", str(blocker / "x")],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.startswith("shapft generate: error: --out") and len(result.stderr.splitlines()) == 1
