"""Atomic writes: outputs (a recording's pair of files together) appear whole or not at
all, also on Ctrl-C, with a normal file's permissions."""
import os
import signal
import stat

import numpy as np
import pytest

from gnuradio.shapft.core import artifacts, recording


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_permissions_a_plain_write_would(tmp_path, umask):
    old = os.umask(umask)
    try:
        artifacts.write_json(tmp_path / "out.json", {"a": 1})
        with open(tmp_path / "plain.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / "out.json").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain.json").st_mode) == 0o666 & ~umask
    if umask == 0o022:
        assert mode & stat.S_IROTH    # world-readable under the usual umask


def test_a_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []


def test_command_line_spells_options_and_quotes_values():
    line = artifacts.command_line("train", ("--data", "my data"), ("--resume", True), ("--mask", None),
                                  ("--force", False), ("--epochs", 3))
    assert line == "shapft train --data 'my data' --resume --epochs 3"


def test_output_checks_name_the_option(tmp_path):
    (tmp_path / "exists.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--json .*exists; pass --force"):
        artifacts.check_new_output(tmp_path / "exists.json", option="--json")
    assert artifacts.check_new_output(tmp_path / "exists.json", force=True) == tmp_path / "exists.json"
    with pytest.raises(IsADirectoryError, match="--out"):
        artifacts.check_new_output(tmp_path)
    with pytest.raises(NotADirectoryError, match="--out"):
        artifacts.writable_dir(tmp_path / "exists.json")
    with pytest.raises(FileNotFoundError, match="--model"):
        artifacts.existing_file(tmp_path / "missing.pt", "--model")


def test_write_errors_name_the_file_not_the_temporary(tmp_path):
    (tmp_path / "taken").write_text("a file where a directory is needed")
    with pytest.raises(OSError) as caught:
        artifacts.write_json(tmp_path / "taken" / "out.json", {})
    assert "out.json" in str(caught.value) and ".tmp" not in str(caught.value)
    with pytest.raises(OSError) as caught:
        with artifacts.atomic_path(tmp_path / "out.bin") as tmp:
            raise OSError(28, "No space left on device", str(tmp))
    assert "out.bin" in str(caught.value) and ".tmp" not in str(caught.value)
    assert list(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize("overwriting", [False, True])
def test_ctrl_c_between_the_renames_of_a_recording_leaves_a_whole_pair(tmp_path, monkeypatch, overwriting):
    # SIGINT arrives right after the data file is renamed into place: the meta file
    # must follow it (the interrupt raised after), or a lone or mismatched data file stays.
    base = tmp_path / "rec"
    if overwriting:
        recording.write(base, recording.Recording(np.ones((3, 8), np.complex64), np.zeros(3, int), np.zeros(3)),
                        "the pair written before")
    new = recording.Recording(np.full((2, 8), 2, np.complex64), np.array([0, 1]), np.zeros(2))
    replace = os.replace

    def replace_then_interrupt(src, dst):
        replace(src, dst)
        if str(dst).endswith(recording.DATA_SUFFIX):
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            recording.write(base, new, "the new pair", overwrite=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.sigmf-data", "rec.sigmf-meta"]
    np.testing.assert_array_equal(recording.read(base).frames, new.frames)
