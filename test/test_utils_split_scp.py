"""utils/split_scp.py: exact partitions, speakers kept together, deterministic."""
import subprocess
import sys
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[1] / "utils"
sys.path.insert(0, str(UTILS))
from split_scp import SplitError, split_even, split_keys  # noqa: E402


def test_split_even_sizes():
    assert split_even(10, 3) == [0, 4, 7, 10]
    assert split_even(4, 4) == [0, 1, 2, 3, 4]


def test_split_keys_without_speakers_is_exact_partition():
    keys = [f"u{i:02d}" for i in range(11)]
    parts = split_keys(keys, 4)
    assert [len(p) for p in parts] == [3, 3, 3, 2]
    assert sum(parts, []) == keys
    with pytest.raises(SplitError, match="cannot be split"):
        split_keys(keys[:3], 4)


def test_speakers_kept_together_and_balanced():
    # speakers a:4 b:1 c:3 d:2 e:2 (12 utts) into 3 parts: ideal cuts at 4 and 8 -> [a] [b c] [d e]
    sizes = {"a": 4, "b": 1, "c": 3, "d": 2, "e": 2}
    utt2spk = {f"{s}-{i}": s for s, n in sizes.items() for i in range(n)}
    keys = sorted(utt2spk)
    parts = split_keys(keys, 3, utt2spk)
    assert [sorted({utt2spk[u] for u in p}) for p in parts] == [["a"], ["b", "c"], ["d", "e"]]
    assert sum(parts, []) == keys
    # every speaker in exactly one part
    for s in sizes:
        assert sum(any(utt2spk[u] == s for u in p) for p in parts) == 1
    with pytest.raises(SplitError, match="5 speakers cannot be split into 6"):
        split_keys(keys, 6, utt2spk)
    with pytest.raises(SplitError, match="not contiguous"):
        split_keys(["a-0", "b-0", "a-1"], 2, {"a-0": "a", "b-0": "b", "a-1": "a"})


def test_each_part_non_empty_when_one_speaker_dominates():
    utt2spk = {**{f"a-{i}": "a" for i in range(20)}, "b-0": "b", "c-0": "c"}
    parts = split_keys(sorted(utt2spk), 3, utt2spk)
    assert [len(p) for p in parts] == [20, 1, 1]


def test_cli_nj_writes_numbered_parts(tmp_path):
    scp = tmp_path / "wav.scp"
    u2s = tmp_path / "utt2spk"
    utts = [f"s{s}-u{i}" for s in range(3) for i in range(s + 2)]  # 2 + 3 + 4 = 9 utts
    scp.write_text("".join(f"{u} /wav/{u}.wav\n" for u in utts))
    u2s.write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    cmd = [sys.executable, str(UTILS / "split_scp.py"), "--utt2spk", str(u2s), "--nj", "2", str(scp),
           str(tmp_path / "split2")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    p1 = (tmp_path / "split2/1").read_text().splitlines()
    p2 = (tmp_path / "split2/2").read_text().splitlines()
    # cut closest to 4.5 between speakers: after s0+s1 (5 utts)
    assert [ln.split()[0] for ln in p1] == utts[:5] and p1[0] == "s0-u0 /wav/s0-u0.wav"
    assert [ln.split()[0] for ln in p2] == utts[5:]
    # deterministic, and --keys-only writes utterance lists
    r = subprocess.run(cmd[:2] + ["--keys-only"] + cmd[2:], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and (tmp_path / "split2/2").read_text().split() == utts[5:]
    # explicit output files, bad input names file and line
    scp.write_text("a x\nb y\na z\n")
    r = subprocess.run([sys.executable, str(UTILS / "split_scp.py"), str(scp), str(tmp_path / "o1"),
                        str(tmp_path / "o2")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "wav.scp:3: duplicate key 'a'" in r.stderr
