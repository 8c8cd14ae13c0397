"""Atomic writes: outputs appear whole or not at all, with a normal file's permissions."""
import os
import stat

import pytest

from gnuradio.shapft.core import artifacts


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
