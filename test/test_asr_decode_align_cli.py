"""End-to-end CLI tests on a tiny random CTC checkpoint: decode (greedy, beam, split jobs), score, align."""
import json
import shutil

import numpy as np
import pytest
import torch

from speechkd.align.ctm import read_ctm
from speechkd.asr.tokenizer import build_tokenizer
from speechkd.data.datadir import DataDir, read_kv

PHONES = ["a", "b", "c", "d"]


def _run(main, argv):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv] + ["--no-progress"])
    assert e.value.code == 0


def _tiny_ckpt(exp, data, frontend="cnn"):
    from speechkd.models.checkpoint import save_checkpoint
    from speechkd.models.ctc import CTCModel
    from speechkd.models.ssl import mini_ssl

    torch.manual_seed(0)
    over = dict(d_model=32, n_layers=1, n_heads=2, ffn_dim=64, pos_conv_kernel=8, pos_conv_groups=4)
    if frontend == "cnn":
        over["conv_layers"] = [[16, 10, 5]] + [[16, 3, 2]] * 4 + [[16, 2, 2]] * 2
    else:
        over["frontend"] = "fbank"
    tok = build_tokenizer("phone", read_kv(data / "phones").values(), exp / "tokenizer")
    model = CTCModel(mini_ssl(**over).cfg, tok.vocab_size)
    save_checkpoint(exp / "model", model, {"model": model.model_config(), "data": {"sample_rate": 16000}})
    return model, tok


@pytest.fixture
def phone_data(tiny_datadir):
    d = DataDir(tiny_datadir)
    rng = np.random.default_rng(0)
    d.write("phones", {u: " ".join(rng.choice(PHONES, size=3)) for u in d.utt_ids()})
    return tiny_datadir


def test_decode_score_and_split_jobs(phone_data, tmp_path):
    from speechkd.asr.ctc_search import ctc_greedy
    from speechkd.bin.decode import main as decode
    from speechkd.bin.score import main as score

    exp = tmp_path / "exp"
    model, tok = _tiny_ckpt(exp, phone_data)
    out = exp / "decode_test"
    _run(decode, ["--ckpt", exp / "model", "--data", phone_data, "--out", out, "--device", "cpu"])
    hyp = read_kv(out / "text", allow_empty_value=True)
    assert sorted(hyp) == sorted(DataDir(phone_data).utt_ids())
    # independent check of one utterance: model forward + greedy by hand
    from speechkd.data.audio import load_audio

    utt = sorted(hyp)[0]
    wav = torch.from_numpy(load_audio(read_kv(phone_data / "wav.scp")[utt], 16000))[None]
    with torch.no_grad():
        lp, lens, _ = model.eval()(wav, torch.tensor([wav.shape[1]]), mask=False)
    assert hyp[utt] == tok.decode(ctc_greedy(lp, lens)[0])
    assert (out / "en" / "text").exists() and (out / "decode.yaml").exists()

    # beam search (width 4) and split/merge give the same files as a single job when decoding greedily
    for j in (1, 2):
        _run(decode, ["--ckpt", exp / "model", "--data", phone_data, "--out", exp / "dec_split", "--nj", 2,
                      "--job", j, "--device", "cpu"])
    _run(decode, ["--data", phone_data, "--out", exp / "dec_split", "--nj", 2, "--merge"])
    assert read_kv(exp / "dec_split" / "text", allow_empty_value=True) == hyp
    _run(decode, ["--ckpt", exp / "model", "--data", phone_data, "--out", exp / "dec_beam", "--beam", 4,
                  "--device", "cpu"])
    assert len(read_kv(exp / "dec_beam" / "text", allow_empty_value=True)) == 6

    with pytest.raises(SystemExit) as e:
        score(["--data", str(phone_data), "--ref-file", "phones", "--decode", str(out)])
    assert e.value.code == 0
    res = json.loads((out / "score.json").read_text())
    assert res["units"]["phone"]["Snt"] == 6 and res["units"]["phone"]["Wrd"] == 18
    assert "en" in res["per_lang"]


def test_align_cli_ctm_is_consistent(phone_data, tmp_path):
    from speechkd.bin.align import main as align

    exp = tmp_path / "exp"
    _tiny_ckpt(exp, phone_data)
    out = tmp_path / "ali"
    _run(align, ["--ckpt", exp / "model", "--data", phone_data, "--out", out, "--device", "cpu"])
    ctm = read_ctm(out / "phones.ctm")
    phones = read_kv(phone_data / "phones")
    assert set(ctm) == set(phones)
    for utt, ents in ctm.items():
        assert [e.token for e in ents] == phones[utt].split()
        starts = [e.start for e in ents]
        assert starts == sorted(starts) and starts[0] >= 0
        assert all(e.dur > 0 for e in ents)
        for a, b in zip(ents, ents[1:]):   # "start" mode: contiguous
            assert a.end == pytest.approx(b.start, abs=1e-3)
    # accuracy against itself is perfect
    shutil.copy(out / "phones.ctm", tmp_path / "ref.ctm")
    _run(align, ["--data", phone_data, "--out", out, "--ref-ctm", tmp_path / "ref.ctm"])
    acc = json.loads((out / "accuracy.json").read_text())
    assert acc["median_abs_ms"] == 0.0 and acc["pct_within_tol"] == 100.0 and acc["n_utts"] == 6


def test_decode_fbank_model_uses_feats_and_cmvn(phone_data, tmp_path):
    from speechkd.bin.decode import main as decode
    from speechkd.features.cmvn import compute_cmvn_from_scp
    from speechkd.features.extract import extract_features

    scp = extract_features(phone_data, tmp_path / "fbank", "fbank", progress=False)
    shutil.copy(scp, phone_data / "feats.scp")
    exp = tmp_path / "exp"
    _tiny_ckpt(exp, phone_data, frontend="fbank")
    compute_cmvn_from_scp(phone_data / "feats.scp", progress=False).save(exp / "cmvn.npz")
    _run(decode, ["--ckpt", exp / "model", "--data", phone_data, "--out", exp / "dec", "--device", "cpu"])
    assert len(read_kv(exp / "dec" / "text", allow_empty_value=True)) == 6
    import yaml

    meta = yaml.safe_load((exp / "dec" / "decode.yaml").read_text())
    assert meta["utts"] == 6 and meta["audio_s"] > 0
