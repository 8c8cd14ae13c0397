"""Every example flowgraph compiles with grcc; attack_defense.grc runs headless on the
shipped models (a short configuration) and the Qt GUI example runs offscreen."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(os.environ.get("SHAPFT_SOURCE_DIR", Path(__file__).resolve().parents[1]))
EXAMPLES = sorted((SOURCE / "examples").glob("*.grc"))


def grcc(flowgraph, out_dir):
    env = dict(os.environ, GRC_BLOCKS_PATH=str(SOURCE / "grc"))
    # The venv's interpreter runs grcc: evaluating our blocks' port sizes imports torch.
    result = subprocess.run([sys.executable, "/usr/bin/grcc", "-o", str(out_dir), str(flowgraph)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    generated = out_dir / f"{flowgraph.stem}.py"
    assert generated.exists()
    return generated


def test_there_are_examples():
    assert {"attack_defense.grc", "attack_defense_gui.grc"} <= {p.name for p in EXAMPLES}


@pytest.mark.parametrize("flowgraph", EXAMPLES, ids=lambda p: p.name)
def test_example_compiles(flowgraph, tmp_path):
    grcc(flowgraph, tmp_path)


def test_attack_defense_runs_headless(tmp_path):
    script = grcc(SOURCE / "examples" / "attack_defense.grc", tmp_path)
    result = subprocess.run([sys.executable, str(script), "--num-frames", "440", "--eps", "0.05"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = dict(re.findall(r"^(clean|attacked|defended)\s+(\d+ +\d+ +\d+ +[\d.]+%)$", result.stdout, re.M))
    assert set(rows) == {"clean", "attacked", "defended"}, result.stdout
    for name, row in rows.items():
        frames_in, scored, invalid, accuracy = row.split()
        assert (int(frames_in), int(scored), int(invalid)) == (440, 440, 0), name
    accuracy = {name: float(row.split()[3].rstrip("%")) for name, row in rows.items()}
    # The shipped original classifies clean frames far above chance (9%) and FGSM hurts it.
    assert accuracy["clean"] > 50 and accuracy["attacked"] < accuracy["clean"]


def test_gui_example_runs_offscreen(tmp_path):
    script = grcc(SOURCE / "examples" / "attack_defense_gui.grc", tmp_path)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, str(script), "--duration", "6"], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    frames = [int(n) for n in re.findall(r"(?:clean|attacked|defended): (\d+) frames in", result.stdout + result.stderr)]
    assert len(frames) == 3 and min(frames) > 0, result.stdout + result.stderr
