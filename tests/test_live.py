"""From a stream to a verdict: `shapft record` writes a SigMF stream recording of the
transmitters at another rate and offset, `shapft classify` plays it through the
stream framer into the shipped CNN-LSTM and compares with channel_model_source at the
same SNR; bad input is refused in one line naming the option."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from gnuradio.shapft.core import stream_recording
from shapft_testing import one_line_error

SOURCE = Path(os.environ.get("SHAPFT_SOURCE_DIR", Path(__file__).resolve().parents[1]))
MODEL = SOURCE / "examples" / "models" / "cnn_lstm.pt"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from gnuradio.shapft.cli import main
    base = tmp_path_factory.mktemp("rec") / "bpsk_qpsk"
    assert main(["record", "--out", str(base), "--modulations", "BPSK,QPSK,AM-DSB", "--sample-rate", "1e6",
                 "--offset-hz", "20e3", "--snr-db", "18", "--seconds", "0.1", "--seed", "3"]) == 0
    return base


def test_recording_is_a_sigmf_stream_with_labelled_segments(recorded):
    info = stream_recording.read_info(recorded)
    assert info.sample_rate == 1e6 and info.length == 3 * 100000
    labels = [label for _, _, label, _ in info.segments]
    assert sorted(set(labels)) == ["AM-DSB", "BPSK", "QPSK"] and len(labels) == 3 * 8   # 20 frames' worth each
    assert all(snr == 18.0 for *_, snr in info.segments)
    assert sum(count for _, count, _, _ in info.segments) == info.length
    assert info.info["offset_hz"] == 20e3
    # the signal sits at +20 kHz: most of its power within 20 +- 20 kHz
    x = np.asarray(stream_recording.samples(info)[:65536])
    spectrum = np.abs(np.fft.fft(x)) ** 2
    freqs = np.fft.fftfreq(len(x), 1 / 1e6)
    assert spectrum[np.abs(freqs - 20e3) < 20e3].sum() > 0.7 * spectrum.sum()


def test_same_seed_same_bytes(recorded, tmp_path, shapft):
    code, out, err = shapft("record", "--out", tmp_path / "again", "--modulations", "BPSK,QPSK,AM-DSB",
                            "--sample-rate", "1e6", "--offset-hz", "20e3", "--snr-db", "18", "--seconds", "0.1",
                            "--seed", "3")
    assert code == 0, err
    for suffix in (".sigmf-meta", ".sigmf-data"):
        assert (tmp_path / f"again{suffix}").read_bytes() == Path(f"{recorded}{suffix}").read_bytes()


def test_classify_matches_frames_straight_from_the_channel_model(recorded, tmp_path, shapft):
    code, out, err = shapft("classify", "--recording", f"{recorded}.sigmf-meta", "--model", MODEL,
                            "--frequency-shift=-20e3", "--reference", "--json", tmp_path / "r.json")
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    # 0.1 s at 200 kHz is 156 frames of 128 per class; 468 in all, or one less when the
    # resampler's filter holds back the last few samples
    assert result["frames_cut"] == result["frames_passed"] + result["frames_gated"] + result["frames_invalid"]
    assert result["frames_cut"] in (467, 468)
    assert result["frames_gated"] < 0.05 * result["frames_cut"]
    assert set(result["per_class"]) == {"AM-DSB", "BPSK", "QPSK"}
    reference = result["reference"]["per_class"]
    for name, (frames, accuracy) in result["per_class"].items():
        assert frames > 140
        assert abs(accuracy - reference[name][1]) < 0.2, (name, accuracy, reference[name])
    assert "accuracy" in out and "reference" in out


def test_without_the_shift_the_offset_signal_is_misread(recorded, shapft, tmp_path):
    # The resampler keeps +-80 kHz, so the 20 kHz offset survives unshifted and the
    # model, trained on centred signals, loses accuracy: the shift matters.
    _, _, err = shapft("classify", "--recording", recorded, "--model", MODEL, "--json", tmp_path / "a.json")
    _, _, err2 = shapft("classify", "--recording", recorded, "--model", MODEL, "--frequency-shift=-20e3",
                        "--json", tmp_path / "b.json")
    unshifted = json.loads((tmp_path / "a.json").read_text())["accuracy"]
    shifted = json.loads((tmp_path / "b.json").read_text())["accuracy"]
    assert shifted > unshifted + 0.2, (shifted, unshifted, err, err2)


@pytest.mark.parametrize("args,option", [
    (["--modulations", "BPSK,FOO"], "--modulations"),
    (["--sample-rate", "123.457"], "--sample-rate"),
    (["--sample-rate", "1e6", "--offset-hz", "450e3"], "--offset-hz"),
    (["--seconds", "0"], "--seconds"),
])
def test_record_refuses_bad_options(args, option, tmp_path, shapft):
    code, _, err = shapft("record", "--out", tmp_path / "r", *args)
    assert code == 2
    assert one_line_error(err, "record").startswith(f"shapft record: error: {option}")


@pytest.mark.parametrize("args,option", [
    (["--recording", "/nonexistent/rec"], "--recording"),
    (["--hop", "-3"], "--hop"),
    (["--frequency-shift", "600e3"], "--frequency-shift"),
    (["--gate-db", "2", "--no-gate"], "--gate-db"),
    (["--device", "cuda:7"], "--device"),
])
def test_classify_refuses_bad_options(args, option, recorded, shapft):
    base = ["--model", MODEL] + ([] if "--recording" in args else ["--recording", recorded])
    code, _, err = shapft("classify", *base, *args)
    assert code == 2
    assert one_line_error(err, "classify").startswith(f"shapft classify: error: {option}")


def test_noise_only_recording_is_gated_out_and_awgn_signals_pass(tmp_path, shapft):
    # The energy gate at its default: an empty channel passes (almost) nothing, the same
    # noise with signals at 0 dB SNR (no fading) passes most frames.
    for name, extra in (("noise", ["--noise-only"]), ("signals", ["--channel", "awgn", "--modulations", "QPSK,GFSK"])):
        code, _, err = shapft("record", "--out", tmp_path / name, "--sample-rate", "400e3", "--snr-db", "0",
                              "--seconds", "0.2", *extra)
        assert code == 0, err
        code, _, err = shapft("classify", "--recording", tmp_path / name, "--model", MODEL,
                              "--json", tmp_path / f"{name}.json")
        assert code == 0, err
    noise = json.loads((tmp_path / "noise.json").read_text())
    signals = json.loads((tmp_path / "signals.json").read_text())
    assert noise["frames_cut"] > 300 and noise["frames_passed"] <= 0.05 * noise["frames_cut"], noise
    assert signals["frames_passed"] >= 0.9 * signals["frames_cut"], signals
    assert stream_recording.read_info(tmp_path / "signals").info["channel"] == "awgn"
