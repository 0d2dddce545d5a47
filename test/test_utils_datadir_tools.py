"""utils/validate_data_dir.sh, fix_data_dir.sh (speechkd-validate-data-dir) and utils/data_dir.py tools."""
import os
import subprocess
import sys
from pathlib import Path

from speechkd.data.datadir import DataDir, read_kv

ROOT = Path(__file__).resolve().parents[1]
UTILS = ROOT / "utils"


def sh(*args, cwd=None):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # the venv's python / entry points
    env["PYTHON"] = sys.executable
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


def test_validate_ok_and_need(tiny_datadir):
    r = sh(UTILS / "validate_data_dir.sh", "--no-feats", tiny_datadir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{tiny_datadir}: OK (6 utterances, 2 speakers)"
    r = sh(UTILS / "validate_data_dir.sh", "--need", "feats.scp", tiny_datadir)
    assert r.returncode == 1 and "feats.scp: required file missing" in r.stderr


def test_validate_reports_file_and_line_then_fix_repairs(tiny_datadir):
    d = DataDir(tiny_datadir)
    text = d.file("text").read_text().splitlines()
    # unsorted text, and drop one utterance's text entirely
    d.file("text").write_text("\n".join(text[1:][::-1]) + "\n")
    r = sh(UTILS / "validate_data_dir.sh", tiny_datadir)
    assert r.returncode == 1 and "text:2: not sorted" in r.stderr
    r = sh(UTILS / "fix_data_dir.sh", tiny_datadir)
    assert r.returncode == 0, r.stderr
    assert "OK (5 utterances, 2 speakers, fixed: 1 dropped)" in r.stdout
    first = text[0].split()[0]
    assert first not in d.read("utt2spk") and first not in d.read("wav.scp")
    assert all(first not in v.split() for v in d.read("spk2utt").values())
    assert list(d.read("text")) == sorted(u.split()[0] for u in text[1:])
    # backup holds the old (unsorted) text
    assert (tiny_datadir / ".backup" / "text").read_text().splitlines() == text[1:][::-1]
    assert sh(UTILS / "validate_data_dir.sh", tiny_datadir).returncode == 0


def test_combine_subset_split(tiny_datadir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    utts = DataDir(tiny_datadir).utt_ids()
    assert sh(UTILS / "subset_data_dir.sh", "--first", "2", tiny_datadir, a).returncode == 0
    assert sh(UTILS / "subset_data_dir.sh", "--last", "3", tiny_datadir, b).returncode == 0
    assert DataDir(a).utt_ids() == sorted(utts)[:2]
    assert DataDir(b).utt_ids() == sorted(utts)[-3:]
    r = sh(UTILS / "combine_data.sh", tmp_path / "ab", a, b)
    assert r.returncode == 0, r.stderr
    ab = DataDir(tmp_path / "ab")
    ab.validate()
    assert ab.utt_ids() == sorted(utts)[:2] + sorted(utts)[-3:]
    assert set(read_kv(ab.file("utt2lang")).values()) == {"en"}
    # the same utterance twice is an error
    r = sh(UTILS / "combine_data.sh", tmp_path / "aa", a, a)
    assert r.returncode == 1 and "also in" in r.stderr
    # Kaldi form SRC N DEST: 3 evenly spaced utterances out of 6 -> indices 0, 2, 4
    assert sh(UTILS / "subset_data_dir.sh", tiny_datadir, "3", tmp_path / "n3").returncode == 0
    assert DataDir(tmp_path / "n3").utt_ids() == [sorted(utts)[i] for i in (0, 2, 4)]
    # split keeps speakers together: 2 speakers x 3 utts -> one speaker per part
    r = sh(UTILS / "split_data.sh", tiny_datadir, "2")
    assert r.returncode == 0, r.stderr
    parts = [DataDir(tiny_datadir / "split2" / str(i)) for i in (1, 2)]
    for p in parts:
        p.validate()
    assert [sorted(set(p.read("utt2spk").values())) for p in parts] == [["spk0"], ["spk1"]]
    assert sorted(parts[0].utt_ids() + parts[1].utt_ids()) == sorted(utts)
    r = sh(UTILS / "split_data.sh", tiny_datadir, "3")
    assert r.returncode == 1 and "2 speakers cannot be split into 3" in r.stderr
    assert sh(UTILS / "split_data.sh", "--per-utt", tiny_datadir, "3").returncode == 0
    assert [len(DataDir(tiny_datadir / "split3" / str(i)).utt_ids()) for i in (1, 2, 3)] == [2, 2, 2]
