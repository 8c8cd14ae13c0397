"""`shapft generate`: the tiny preset's three SigMF sets, reproducibility, bad input."""
import hashlib
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
    # one annotation per run of consecutive frames of one class and SNR, back to back
    counts = [a["core:sample_count"] for a in annotations]
    assert all(count % 128 == 0 for count in counts) and sum(counts) == 128 * total
    assert [a["core:sample_start"] for a in annotations] == np.cumsum([0] + counts[:-1]).tolist()
    assert all((a["core:label"], a["shapft:snr_db"]) != (b["core:label"], b["shapft:snr_db"])
               for a, b in zip(annotations, annotations[1:]))
    assert {"name": "shapft", "version": "1.0.0", "optional": True} in handle.get_global_field("core:extensions")
    data = recording.read(meta)
    assert data.info["generator"]["snr_convention"] == "physical"
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


@pytest.mark.parametrize("settings", [
    ["--frames", "20", "--modulations", "QAM16,WBFM,GFSK,AM-SSB", "--snrs=-10,10"],
    ["--frames", "13", "--modulations", "BPSK,CPFSK,AM-DSB", "--snrs=0:12:6"],
])
def test_same_seed_same_bytes_every_run(tmp_path, shapft, settings):
    # Whole data files of several runs: every frame of every setting, wherever the
    # two worker processes' flowgraphs happened to split their work.
    digests = set()
    for run in range(3):
        assert shapft("generate", "--preset", "custom", *settings, "--seed", 5, "--quiet",
                      "--out", tmp_path / str(run))[0] == 0
        digests.add(hashlib.sha256((tmp_path / str(run) / "custom.sigmf-data").read_bytes()).hexdigest())
    assert len(digests) == 1


@pytest.mark.parametrize("limits", [dict(picker_max_items=5), dict(picker_max_items=15, output_buffer=64),
                                    dict(output_buffer=4096)])
def test_setting_frames_do_not_depend_on_scheduling(monkeypatch, limits):
    # 20 frames come from 5 chains, a round of 5 frames at a time: with at most 5 items
    # per call the frame picker makes one round per call, by default several.
    reference = generate.run_setting("WBFM", 4.0, 20, 17)
    source = generate.channel_model_source

    def scheduled(*args, **kwargs):
        made = source(*args, output_buffer=limits.get("output_buffer", 0), **kwargs)
        if "picker_max_items" in limits:
            made.picker.set_max_noutput_items(limits["picker_max_items"])
        return made
    monkeypatch.setattr(generate, "channel_model_source", scheduled)
    np.testing.assert_array_equal(generate.run_setting("WBFM", 4.0, 20, 17), reference)


def test_large_setting_runs_in_bounded_flowgraphs(monkeypatch):
    # rml2016a's 600 frames per setting in one flowgraph (150 chains) need more System V
    # shared-memory segments than two workers may hold; here the bound is 2 chains.
    made = []
    source = generate.channel_model_source

    def counted(*args, **kwargs):
        made.append((kwargs["num_frames"], kwargs["chains_per_setting"], kwargs["seed"]))
        return source(*args, **kwargs)
    monkeypatch.setattr(generate, "channel_model_source", counted)
    monkeypatch.setattr(generate, "CHAINS_PER_FLOWGRAPH", 2)
    frames = generate.run_setting("QPSK", 10.0, 19, 8)
    assert [(n, chains) for n, chains, _ in made] == [(8, 2), (8, 2), (3, 1)]
    assert len({seed for _, _, seed in made}) == 3
    assert frames.shape == (19, 128) and len(np.unique(frames, axis=0)) == 19


def test_setting_seeds_do_not_depend_on_order():
    counts = {("BPSK", 0.0): 2, ("GFSK", 10.0): 2}
    both = generate.generate_split(counts, 3, "train", workers=1, progress=False)
    alone = generate.generate_split({("GFSK", 10.0): 2}, 3, "train", workers=1, progress=False)
    np.testing.assert_array_equal(both.frames[2:], alone.frames)


@pytest.mark.parametrize("args,message", [
    (["--preset", "custom", "--frames", "2", "--modulations", "QAM256"], "unknown modulation 'QAM256'"),
    (["--preset", "custom", "--frames", "2", "--snrs", ","], "snrs_db: the list is empty"),
    (["--preset", "custom", "--frames", "0"], "--frames must be >= 1"),
    (["--preset", "custom", "--frames", "2", "--snrs", "0,inf"], "snrs_db: a dataset needs finite SNRs"),
])
def test_bad_input_refused(tmp_path, shapft, args, message):
    code, _, err = shapft("generate", "--out", tmp_path, *args)
    assert code != 0
    assert message in err and len(err.strip().splitlines()) == 1


def test_snr_convention_recorded_and_deterministic(tmp_path, shapft):
    # No option and --snr-convention physical give the same bytes; radioml gives other
    # frames, the same for the same seed, labelled with the same nominal SNRs.
    args = ["generate", "--preset", "custom", "--frames", "4", "--modulations", "QPSK,AM-SSB",
            "--snrs=-4,10", "--seed", 3, "--quiet"]
    runs = {"default": [], "physical": ["--snr-convention", "physical"],
            "radioml": ["--snr-convention", "radioml"], "radioml-again": ["--snr-convention", "radioml"]}
    for name, option in runs.items():
        assert shapft(*args, *option, "--out", tmp_path / name)[0] == 0
    read = lambda d, ext: (tmp_path / d / f"custom.sigmf-{ext}").read_bytes()
    for ext in ("data", "meta"):
        assert read("default", ext) == read("physical", ext) and read("radioml", ext) == read("radioml-again", ext)
    assert read("physical", "data") != read("radioml", "data")
    for name, convention in (("physical", "physical"), ("radioml", "radioml")):
        data = recording.read(tmp_path / name / "custom.sigmf-meta")
        assert data.info["generator"]["snr_convention"] == convention
        assert sorted(set(data.snr_db.tolist())) == [-4.0, 10.0]


def test_radioml_convention_is_physical_at_twice_the_db():
    # RadioML 2016.10a's noise amplitude 10^(-S/10) is the physical one of 2S dB,
    # 10^(-2S/20): with the same seed, label S under radioml gives 2S dB's frames.
    for label in (-4.0, 9.0):
        radioml = generate.run_setting("QPSK", label, 8, 31, snr_convention="radioml")
        np.testing.assert_array_equal(radioml, generate.run_setting("QPSK", 2 * label, 8, 31))
    assert not np.array_equal(radioml, generate.run_setting("QPSK", 9.0, 8, 31))


def test_bad_snr_convention_refused(tmp_path, shapft, capsys):
    with pytest.raises(SystemExit) as refused:     # argparse: a choice outside physical, radioml
        shapft("generate", "--preset", "tiny", "--out", tmp_path, "--snr-convention", "RadioML")
    assert refused.value.code == 2
    assert "argument --snr-convention: invalid choice: 'RadioML'" in capsys.readouterr().err.splitlines()[-1]
    for call in (lambda: generate.generate_custom(tmp_path, "c", 1, ["BPSK"], [0.0], 1, snr_convention="RadioML"),
                 lambda: generate.generate_preset("tiny", tmp_path, 1, snr_convention="RadioML")):
        with pytest.raises(ValueError, match="^snr_convention: must be one of physical, radioml, got 'RadioML'$"):
            call()
    assert list(tmp_path.iterdir()) == []


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
