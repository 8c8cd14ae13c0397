"""The example flowgraphs through the commands users run: every example compiles with
scripts/grcc.sh; attack_defense.grc runs headless on the shipped models (a short
configuration) and refuses, in one line, an eps without a shipped SHAP-FT model; the Qt
dashboard runs offscreen and its embedded blocks do their jobs; scripts/companion.sh opens
GNU Radio Companion (under Xvfb)."""
import os
import re
import shutil
import subprocess
import time
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

SOURCE = Path(os.environ.get("SHAPFT_SOURCE_DIR", Path(__file__).resolve().parents[1]))
EXAMPLES = sorted((SOURCE / "examples").glob("*.grc"))
SHIPPED_EPS = sorted((p.stem[len("cnn_lstm_shapft_eps"):] for p in
                      (SOURCE / "examples" / "models").glob("cnn_lstm_shapft_eps*.pt")), key=float)


def user_env(**extra):
    # As a user runs the scripts: no GRC_BLOCKS_PATH of ours (they set it themselves).
    env = {k: v for k, v in os.environ.items() if k != "GRC_BLOCKS_PATH"}
    return dict(env, **extra)


def grcc_sh(flowgraph, out_dir, run=None, timeout=600, **env):
    """`bash scripts/grcc.sh FLOWGRAPH -o OUT_DIR [-r RUN...]`, as a user types it."""
    command = ["bash", str(SOURCE / "scripts" / "grcc.sh"), str(flowgraph), "-o", str(out_dir)]
    if run is not None:
        command += ["-r", *run]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=user_env(**env))


def compiled(flowgraph, out_dir):
    result = grcc_sh(flowgraph, out_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    generated = Path(result.stdout.strip().splitlines()[-1])
    assert generated.parent == Path(out_dir) and generated.is_file(), result.stdout
    return generated


def test_there_are_examples():
    assert {"attack_defense.grc", "attack_defense_gui.grc", "live_classify.grc"} <= {p.name for p in EXAMPLES}
    assert SHIPPED_EPS == ["0.025", "0.05", "0.075", "0.1", "0.15", "0.2"]


@pytest.mark.parametrize("flowgraph", EXAMPLES, ids=lambda p: p.name)
def test_example_compiles(flowgraph, tmp_path):
    compiled(flowgraph, tmp_path)


def test_grcc_sh_usage(tmp_path):
    result = grcc_sh(tmp_path / "missing.grc", tmp_path)
    assert result.returncode == 2 and "no such flowgraph" in result.stderr


@pytest.mark.parametrize("defence, defence_name", [("robust", "the robust model"), ("shapft", "SHAP-FT")])
def test_attack_defense_runs_headless(defence, defence_name, tmp_path):
    result = grcc_sh(SOURCE / "examples" / "attack_defense.grc", tmp_path,
                     ["--num-frames", "440", "--eps", "0.05", "--defence", defence])
    assert result.returncode == 0, result.stdout + result.stderr
    rows = dict(re.findall(r"^(clean|attacked|defended)\s+(\d+ +\d+ +\d+ +[\d.]+%)$", result.stdout, re.M))
    assert set(rows) == {"clean", "attacked", "defended"}, result.stdout
    for name, row in rows.items():
        frames_in, scored, invalid, accuracy = row.split()
        assert (int(frames_in), int(scored), int(invalid)) == (440, 440, 0), name
    accuracy = {name: float(row.split()[3].rstrip("%")) for name, row in rows.items()}
    # The shipped original classifies clean frames far above chance (9%) and FGSM hurts it.
    assert accuracy["clean"] > 50 and accuracy["attacked"] < accuracy["clean"]
    # the defended branch runs the chosen defence, and the report names it
    recovered = re.findall(rf"^{defence_name} recovers ([+-][\d.]+) points of the ([\d.]+) the attack took$",
                           result.stdout, re.M)
    assert len(recovered) == 1, result.stdout
    assert float(recovered[0][0]) == pytest.approx(accuracy["defended"] - accuracy["attacked"], abs=0.11)
    # The attack detector on each branch: every frame scored; it flags attacked frames far more
    # often than clean ones (calibrated for 5 % false alarms; measured 5.2 % and 22.0 %)
    alarms = {branch: (float(rate), int(n)) for branch, rate, n in re.findall(
        r"^attack detector on the (clean|attacked) branch: ([\d.]+)% [a-z ]+ \((\d+) frames", result.stdout, re.M)}
    assert set(alarms) == {"clean", "attacked"}, result.stdout
    assert all(n == 440 for _, n in alarms.values()), result.stdout
    assert alarms["clean"][0] < 10 and alarms["attacked"][0] > alarms["clean"][0] + 10, result.stdout


def assert_refuses(result, program, eps):
    """One line on stderr naming the eps and the shipped ones, no traceback, exit 1."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == (f"{program}: no shipped SHAP-FT model for eps {eps}; "
                         f"shipped: {', '.join(SHIPPED_EPS)}"), result.stderr


@pytest.mark.parametrize("eps", ["0.3", "0.06"])
def test_attack_defense_refuses_an_eps_without_a_shipped_model(eps, tmp_path):
    # `bash scripts/demo.sh --defence shapft --eps 0.3` runs exactly this.
    result = grcc_sh(SOURCE / "examples" / "attack_defense.grc", tmp_path, ["--defence", "shapft", "--eps", eps],
                     timeout=300)
    assert_refuses(result, "attack_defense", eps)


def with_parameter(flowgraph, name, value, out_dir):
    """A copy of a flowgraph whose parameter block `name` has another default."""
    data = yaml.safe_load(flowgraph.read_text())
    [block] = [b for b in data["blocks"] if b["name"] == name]
    block["parameters"]["value"] = value
    copy = out_dir / flowgraph.name
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def test_attack_defense_with_eps_set_in_the_flowgraph_refuses(tmp_path):
    # The eps parameter set to 0.06 in Companion: it compiles, and refuses to run.
    flowgraph = with_parameter(SOURCE / "examples" / "attack_defense.grc", "eps", "0.06", tmp_path)
    result = grcc_sh(flowgraph, tmp_path, ["--defence", "shapft"], timeout=300)
    assert_refuses(result, "attack_defense", "0.06")


def test_gui_example_refuses_an_eps_without_a_shipped_model(tmp_path):
    result = grcc_sh(SOURCE / "examples" / "attack_defense_gui.grc", tmp_path, ["--defence", "shapft", "--shapft-eps", "0.06"],
                     timeout=300, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path))
    assert_refuses(result, "attack_defense_gui", "0.06")


@pytest.mark.parametrize("flowgraph", ["attack_defense.grc", "attack_defense_gui.grc"])
def test_attack_defense_refuses_an_unknown_defence(flowgraph, tmp_path):
    result = grcc_sh(SOURCE / "examples" / flowgraph, tmp_path, ["--defence", "adversarial"], timeout=300,
                     QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    program = flowgraph.removesuffix(".grc")
    assert result.stderr.strip().splitlines()[-1] == f"{program}: --defence must be robust or shapft, got 'adversarial'"


def test_gui_example_runs_offscreen(tmp_path):
    # Its own Qt settings directory: the window geometry it saves on closing is not the user's.
    result = grcc_sh(SOURCE / "examples" / "attack_defense_gui.grc", tmp_path, ["--duration", "30"],
                     timeout=300, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    frames = [int(n) for n in re.findall(r"(?:clean|attacked|defended): (\d+) frames in", result.stdout + result.stderr)]
    assert len(frames) == 3 and min(frames) > 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def recording_1msps(tmp_path_factory):
    """The transmitters as a radio at 1 Msps would see them: 20 kHz offset, SNR 18 dB."""
    from gnuradio.shapft.cli import main
    base = tmp_path_factory.mktemp("recording") / "rec"
    assert main(["record", "--out", str(base), "--modulations", "BPSK,QPSK,GFSK,AM-DSB", "--sample-rate", "1e6",
                 "--offset-hz", "20e3", "--snr-db", "18", "--seconds", "0.1"]) == 0
    return base.with_suffix(".sigmf-meta")


def test_live_classify_runs_on_a_recording(recording_1msps, tmp_path):
    result = grcc_sh(SOURCE / "examples" / "live_classify.grc", tmp_path,
                     ["--recording", str(recording_1msps), "--frequency-shift=-20e3"], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    cut, passed = map(int, re.search(r"stream framer: (\d+) frames cut, (\d+) passed", result.stdout).groups())
    # 1 Msps to 200 kHz: 80,000 samples, 625 frames, less one when the resampler's
    # filter holds back the last few samples
    assert cut in (624, 625) and passed > 0.95 * cut, result.stdout
    rows = dict(re.findall(r"^(BPSK|QPSK|GFSK|AM-DSB)\s+\d+\s+([\d.]+)%$", result.stdout, re.M))
    assert set(rows) == {"BPSK", "QPSK", "GFSK", "AM-DSB"}, result.stdout
    # these four, centred and at 18 dB, the shipped CNN-LSTM reads well (channel_model_source: 90-100 %)
    assert all(float(accuracy) > 75 for accuracy in rows.values()), result.stdout


def test_live_dashboard_runs_offscreen(recording_1msps, tmp_path):
    result = grcc_sh(SOURCE / "examples" / "live_classify_gui.grc", tmp_path,
                     ["--recording", str(recording_1msps), "--frequency-shift=-20e3", "--duration", "10"],
                     timeout=300, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    cut, passed = map(int, re.search(r"stream framer: (\d+) frames cut, (\d+) passed", result.stdout).groups())
    assert passed > 0.9 * cut > 0, result.stdout   # the recording loops at 1 Msps for 10 s


def test_live_classify_without_a_recording_says_what_to_do(tmp_path):
    result = grcc_sh(SOURCE / "examples" / "live_classify.grc", tmp_path, [], timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("live_classify: no recording: give --recording")


def with_states(flowgraph, states, out_dir):
    """A copy of a flowgraph with some blocks' states changed ({name: state})."""
    data = yaml.safe_load(flowgraph.read_text())
    for block in data["blocks"]:
        if block["name"] in states:
            block["states"]["state"] = states.pop(block["name"])
    assert not states, f"no such blocks: {states}"
    copy = out_dir / flowgraph.name
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


@pytest.mark.parametrize("name,states", [
    ("live_classify.grc", {"radio": "enabled", "recording_source": "disabled"}),
    ("live_classify_gui.grc", {"radio": "enabled", "recording_source": "disabled", "throttle": "disabled"})])
def test_live_classify_radio_variant_compiles(name, states, tmp_path):
    # The radio enabled and the recording disabled, as a user switches them in Companion.
    flowgraph = with_states(SOURCE / "examples" / name, dict(states), tmp_path)
    program = compiled(flowgraph, tmp_path / "out")
    text = program.read_text()
    assert "soapy.source(" in text and "shapft.sigmf_source(" not in text


# The dashboard's embedded Python (blocks and module), run outside the flowgraph.

def embedded(name):
    data = yaml.safe_load((SOURCE / "examples" / "attack_defense_gui.grc").read_text())
    [block] = [b for b in data["blocks"] if b["name"] == name]
    module = types.ModuleType(name)
    exec(block["parameters"].get("_source_code") or block["parameters"]["source_code"], module.__dict__)
    return module


def test_dashboard_constellations_show_the_chosen_class_and_snr():
    import pmt
    from gnuradio import blocks, gr

    module = embedded("chosen")
    labels = ["QPSK", "BPSK", "QPSK", "QPSK", "BPSK"]
    snrs = [18, 18, 0, 18, 6]
    frames = np.arange(5 * 128, dtype=np.complex64)
    tags = []
    for i, (label, snr) in enumerate(zip(labels, snrs)):
        for key, value in (("label", pmt.intern(label)), ("snr_db", pmt.from_double(snr))):
            tag = gr.tag_t()
            tag.offset, tag.key, tag.value = i, pmt.intern(key), value
            tags.append(tag)

    def run(modulation, snr_db):
        top = gr.top_block()
        clean = blocks.vector_source_c(frames.tolist(), False, 128, tags)
        attacked = blocks.vector_source_c((-frames).tolist(), False, 128)
        chosen = module.class_frames(modulation, snr_db)
        sinks = [blocks.vector_sink_c(128), blocks.vector_sink_c(128)]
        top.connect(clean, (chosen, 0))
        top.connect(attacked, (chosen, 1))
        top.connect((chosen, 0), sinks[0])
        top.connect((chosen, 1), sinks[1])
        top.run()
        kept = np.array(sinks[0].data()).reshape(-1, 128)[:, 0].real.astype(int) // 128
        assert np.array_equal(np.array(sinks[1].data()), -np.array(sinks[0].data()))   # same frames
        return kept.tolist()

    assert run("QPSK", None) == [0, 2, 3]
    assert run("QPSK", 18) == [0, 3]
    assert run("BPSK", 6) == [4]
    assert run("WBFM", None) == []


def test_dashboard_history_sends_each_vector_twice():
    # GNU Radio 3.10's vector sink draws the second vector of each call.
    module = embedded("history")
    block = module.accuracy_history(points=4, period=0.01)
    block.clean, block.attacked = 0.5, 0.25
    out = [np.zeros((2, 4), np.float32) for _ in range(3)]
    for _ in range(2):
        assert block.work([], out) == 2
    unknown = module.UNKNOWN
    assert out[0].tolist() == [[unknown, unknown, 50, 50]] * 2
    assert out[1].tolist() == [[unknown, unknown, 25, 25]] * 2
    assert out[2].tolist() == [[unknown] * 4] * 2   # nan: unknown, below the plot


def test_dashboard_per_class_table_counts_the_latest_seconds(monkeypatch):
    module = embedded("dashboard")
    now = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    classes = ["A", "B"]
    assert "&ndash;" in module.per_class_table(classes, {"Clean": 0})   # before any frame
    module.per_class_table(classes, {"Clean": np.array([[5, 5], [0, 10]])})
    now[0] += module.WINDOW_S + 1
    table = module.per_class_table(classes, {"Clean": np.array([[5, 5], [0, 10]])})
    assert table.count("&ndash;") == 2   # nothing new in the window
    now[0] += 1
    table = module.per_class_table(classes, {"Clean": np.array([[14, 6], [0, 20]])})
    assert re.findall(r"(\d+)&nbsp;%", table) == ["90", "100"]
    assert module.accuracy_text("Clean", "blue", "")(float("nan")).count("&ndash;") == 1


# GNU Radio Companion

def start_xvfb():
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        display = pipe.readline().strip()
    assert display, "Xvfb did not start"
    return xvfb, f":{display}"


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_companion_script_opens_companion_with_our_blocks(tmp_path):
    flowgraph = SOURCE / "examples" / "attack_defense_gui.grc"
    xvfb, display = start_xvfb()
    log = tmp_path / "companion.log"
    try:
        with open(log, "w") as out:
            env = user_env(DISPLAY=display, GRC_PREFS_PATH=str(tmp_path / "grc.conf"), PYTHONUNBUFFERED="1")
            companion = subprocess.Popen(["bash", str(SOURCE / "scripts" / "companion.sh"), str(flowgraph)],
                                         stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            # Its window, named after the flowgraph (when x11-utils is there), drawn (not blank).
            title = f"{flowgraph.name} - {flowgraph.parent}"
            shot = tmp_path / "companion.png"
            windows, colours = "", 0
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and companion.poll() is None:
                time.sleep(2)
                if shutil.which("xwininfo"):
                    windows = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True,
                                             env=dict(os.environ, DISPLAY=display)).stdout
                    if title not in windows:
                        continue
                subprocess.run(["import", "-display", display, "-window", "root", str(shot)], check=True)
                colours = int(subprocess.run(["identify", "-format", "%k", str(shot)], capture_output=True,
                                             text=True).stdout)
                if colours > 100:
                    break
            assert companion.poll() is None, log.read_text()
            assert not shutil.which("xwininfo") or title in windows, windows + log.read_text()
            assert colours > 100, "the screen stayed blank"
        finally:
            stop(companion)
    finally:
        stop(xvfb)
    text = log.read_text()
    blocks = SOURCE / ".venv" / "share" / "gnuradio" / "grc" / "blocks"
    # Companion lists where it found blocks: the installed module's YAML is there.
    assert str(blocks) in text.split("Loading:")[0], text
    assert sorted(p.name for p in blocks.glob("shapft_*.block.yml")), f"no blocks installed in {blocks}"
