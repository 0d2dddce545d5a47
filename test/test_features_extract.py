"""Feature extraction to ark/scp, job merge, crash safety, global CMVN and the two CLIs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

kaldiio = pytest.importorskip("kaldiio")

from speechkd.data.audio import load_audio
from speechkd.data.datadir import DataDir, write_datadir
from speechkd.features import extract as extract_mod
from speechkd.features.cmvn import GlobalCMVN, compute_cmvn_from_scp
from speechkd.features.extract import extract_features, merge_feature_scps
from speechkd.features.kaldi import fbank, mfcc
from speechkd.utils.errors import DataError


def _final_files(out):
    return sorted(p.name for p in out.iterdir() if p.is_file())


def test_extract_equals_in_memory(tiny_datadir, tmp_path):
    out = tmp_path / "dump"
    scp = extract_features(tiny_datadir, out, "fbank", {"num_mel_bins": 40}, progress=False)
    d = DataDir(tiny_datadir)
    feats = dict(kaldiio.load_scp(str(scp)))
    assert sorted(feats) == d.utt_ids()
    nf = dict(l.split() for l in open(out / "feats.utt2num_frames"))
    for utt, spec in d.read("wav.scp").items():
        ref = fbank(torch.from_numpy(load_audio(spec, 16000)), num_mel_bins=40).numpy()
        assert feats[utt].shape == ref.shape and int(nf[utt]) == ref.shape[0]
        np.testing.assert_allclose(feats[utt], ref, atol=1e-5)
    # scp points at the final ark name, and no temp files are left
    assert all(":" in ln and ln.split()[1].rsplit(":", 1)[0] == str(out / "feats.ark") for ln in open(scp))
    assert _final_files(out) == ["feats.ark", "feats.scp", "feats.utt2num_frames"]


def test_extract_mfcc_compressed(tiny_datadir, tmp_path):
    scp = extract_features(tiny_datadir, tmp_path / "m", "mfcc", None, compress=True, progress=False)
    utt, spec = next(iter(DataDir(tiny_datadir).read("wav.scp").items()))
    got = dict(kaldiio.load_scp(str(scp)))[utt]
    ref = mfcc(torch.from_numpy(load_audio(spec, 16000))).numpy()
    assert got.shape == ref.shape == (ref.shape[0], 13)
    rng = ref.max() - ref.min()
    assert np.abs(got - ref).max() < 0.02 * rng  # lossy 8-bit-per-column compression, but close


def test_killed_extraction_leaves_nothing(tiny_datadir, tmp_path, monkeypatch):
    real, calls = extract_mod.compute_utterance, []

    def dying(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(extract_mod, "compute_utterance", dying)
    out = tmp_path / "dump"
    with pytest.raises(KeyboardInterrupt):
        extract_features(tiny_datadir, out, progress=False)
    assert list(out.iterdir()) == []  # neither final names nor temp files


def test_nan_features_name_the_utterance(tiny_datadir, tmp_path, monkeypatch):
    real = extract_mod.compute_utterance

    def nan_for_utt2(wav, kind, opts, utt):
        f = real(wav, kind, opts, utt)
        if utt == "spk0-utt2":
            f[3, 5] = np.nan
        return f

    monkeypatch.setattr(extract_mod, "compute_utterance", nan_for_utt2)
    with pytest.raises(DataError, match="spk0-utt2.*NaN"):
        extract_features(tiny_datadir, tmp_path / "o", progress=False)
    assert not (tmp_path / "o" / "feats.scp").exists()


def test_jobs_then_merge_sorted(tiny_datadir, tmp_path):
    from speechkd.bin.compute_fbank import main

    out = tmp_path / "dump"
    utts = DataDir(tiny_datadir).utt_ids()
    (out / "split2").mkdir(parents=True)
    # job 1 gets the odd positions in reverse order, job 2 the even ones: the merge must sort
    (out / "split2" / "1").write_text("\n".join(utts[1::2][::-1]) + "\n")
    (out / "split2" / "2").write_text("\n".join(utts[0::2]) + "\n")
    for job in (1, 2):
        with pytest.raises(SystemExit) as e:
            main(["--data", str(tiny_datadir), "--out", str(out), "--job", str(job), "--utt-list",
                  str(out / "split2" / str(job)), "--fbank.num_mel_bins", "24", "--no-progress"])
        assert e.value.code == 0
    with pytest.raises(SystemExit) as e:
        main(["--merge", "--data", str(tiny_datadir), "--out", str(out)])
    assert e.value.code == 0
    d = DataDir(tiny_datadir)
    keys = list(d.read("feats.scp"))
    assert keys == sorted(utts)
    feats = dict(kaldiio.load_scp(str(d.file("feats.scp"))))
    nf = d.read("utt2num_frames")
    assert all(feats[u].shape == (int(nf[u]), 24) for u in utts)
    d.validate(need=("feats.scp",))


def test_merge_missing_job_is_error(tiny_datadir, tmp_path):
    utts = DataDir(tiny_datadir).utt_ids()
    extract_features(tiny_datadir, tmp_path / "o", utts=utts[:2], name="feats.1", progress=False)
    with pytest.raises(DataError, match="4 utterances have no features"):
        merge_feature_scps(tiny_datadir, tmp_path / "o")


def test_extract_honours_segments(tmp_path):
    from speechkd.data.audio import write_wav

    sr = 16000
    t = np.arange(2 * sr) / sr
    wav = (0.3 * np.sin(2 * np.pi * 300 * t) * (t < 1) + 0.3 * np.sin(2 * np.pi * 1200 * t) * (t >= 1))
    write_wav(tmp_path / "rec.wav", wav.astype(np.float32), sr)
    write_datadir(tmp_path / "d", {"wav.scp": {"rec": str(tmp_path / "rec.wav")},
                                   "segments": {"a": "rec 0.00 0.90", "b": "rec 1.10 1.95"},
                                   "text": {"a": "x", "b": "y"}, "utt2spk": {"a": "s", "b": "s"}})
    scp = extract_features(tmp_path / "d", tmp_path / "o", progress=False)
    f = dict(kaldiio.load_scp(str(scp)))
    assert f["a"].shape[0] == 88 and f["b"].shape[0] == 83
    bank = lambda hz: int(np.argmax(f["a"].mean(0) if hz == 300 else f["b"].mean(0)))
    assert bank(300) < bank(1200)  # the low tone sits in a lower mel bin than the high one


def test_global_cmvn_by_hand(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(3.0, 2.0, (50, 4)).astype(np.float32)
    b = rng.normal(3.0, 2.0, (30, 4)).astype(np.float32)
    b[:, 3] = 7.0  # constant dim: std floored
    c = GlobalCMVN(std_floor=1e-3)
    c.accumulate(a)
    c.accumulate(torch.from_numpy(b)[None], lengths=[20])  # only 20 valid frames
    c.finalize()
    allx = np.concatenate([a, b[:20]]).astype(np.float64)
    np.testing.assert_allclose(c.mean.numpy(), allx.mean(0), rtol=1e-6)
    np.testing.assert_allclose(c.std.numpy(), np.maximum(allx.std(0), 1e-3), rtol=1e-5)
    assert c.count == 70
    c.save(tmp_path / "cmvn.npz")
    z = np.load(tmp_path / "cmvn.npz")
    assert set(z.files) == {"mean", "std", "count"} and int(z["count"]) == 70
    c2 = GlobalCMVN.load(tmp_path / "cmvn.npz")
    y = c2(torch.from_numpy(allx).float())
    np.testing.assert_allclose(y.mean(0).numpy()[:3], 0, atol=1e-4)
    np.testing.assert_allclose(y.std(0, unbiased=False).numpy()[:3], 1, atol=1e-4)
    assert c2(torch.zeros(2, 5, 4)).shape == (2, 5, 4)
    with pytest.raises(DataError, match="not found"):
        GlobalCMVN.load(tmp_path / "nope.npz")


def test_cmvn_cli_from_scp(tiny_datadir, tmp_path):
    from speechkd.bin.compute_cmvn import main

    scp = extract_features(tiny_datadir, tmp_path / "o", progress=False)
    with pytest.raises(SystemExit) as e:
        main(["--feats", str(scp), "--out", str(tmp_path / "o" / "cmvn.npz"), "--no-progress"])
    assert e.value.code == 0
    allf = np.concatenate([m for _, m in kaldiio.load_scp_sequential(str(scp))])
    c = GlobalCMVN.load(tmp_path / "o" / "cmvn.npz")
    np.testing.assert_allclose(c.mean.numpy(), allf.mean(0), rtol=1e-4, atol=1e-4)
    assert c.count == len(allf)
    assert compute_cmvn_from_scp(scp, progress=False).count == len(allf)


def test_cli_bad_utt_list_is_one_line_error(tiny_datadir, tmp_path, capsys):
    from speechkd.bin.compute_fbank import main

    (tmp_path / "list").write_text("spk0-utt0\nno-such-utt\n")
    with pytest.raises(SystemExit) as e:
        main(["--data", str(tiny_datadir), "--out", str(tmp_path / "o"), "--utt-list", str(tmp_path / "list"),
              "--no-progress"])
    assert e.value.code == 1
    assert "no-such-utt" in capsys.readouterr().err
    assert list((tmp_path / "o").iterdir()) == []
