"""Atomic writes and the overwrite guard."""

from __future__ import annotations

import pytest

from jamcommon.files import OutputExistsError, atomic_path, atomic_write_text


def test_atomic_write_and_refuse_overwrite(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "one")
    assert target.read_text() == "one"
    with pytest.raises(OutputExistsError, match="--force"):
        atomic_write_text(target, "two")
    atomic_write_text(target, "two", overwrite=True)
    assert target.read_text() == "two"


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("crash in the middle")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
