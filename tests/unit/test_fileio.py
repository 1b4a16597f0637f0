"""atomic_path: a file appears complete or not at all, with the permissions a plain open() would give it."""

from __future__ import annotations

import os
import stat

import pytest

from mlip_autopipec.fileio import atomic_path


@pytest.mark.parametrize("umask", [0o002, 0o022, 0o077])
def test_files_get_the_users_umask_not_0600(tmp_path, umask):
    """mkstemp made every record, export and report 0600: a group's project folder could not read them."""
    old = os.umask(umask)
    try:
        with atomic_path(tmp_path / "sub" / "record.json") as tmp:
            tmp.write_text("{}")
        with open(tmp_path / "plain.txt", "w") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "sub" / "record.json").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)


def test_the_file_appears_only_when_complete(tmp_path):
    target = tmp_path / "data.pckl.gzip"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".data.pckl.gzip.") and tmp.name.endswith(".pckl.gzip")
        tmp.write_text("half")
        raise RuntimeError("killed while writing")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["data.pckl.gzip"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["data.pckl.gzip"]
