"""Atomic output: a failed write leaves the target as it was and no temporary files behind."""
import pytest

from speechkd.utils.fileio import atomic_dir, atomic_write_text


def test_atomic_dir_replaces_on_success_and_keeps_the_old_on_failure(tmp_path):
    out = tmp_path / "model"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("one")
    assert (out / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("killed")
    assert (out / "a.txt").read_text() == "one"                 # the old dir is untouched
    with atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]   # replaced whole, not merged
    assert [p.name for p in tmp_path.iterdir()] == ["model"]    # no temporary dirs left


def test_atomic_write_text(tmp_path):
    p = tmp_path / "sub" / "t.txt"
    atomic_write_text(p, "x\n")
    assert p.read_text() == "x\n" and [q.name for q in p.parent.iterdir()] == ["t.txt"]
