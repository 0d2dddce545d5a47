"""Bad input suite (issue 8): each kind of bad input gets a clear one-line error naming the file/line or
utterance (no traceback), and nothing already written is lost or half-written."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechkd.data.datadir import DataDir, write_kv


def run_cli(verb: str, *args: str, cwd=None):
    proc = subprocess.run([sys.executable, "-m", f"speechkd.bin.{verb}", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)
    return proc.returncode, proc.stderr


def one_line_error(stderr: str) -> str:
    """The CLI's error: exactly one 'ERROR:' line and no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("ERROR:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _fbank(data, out, *extra):
    return run_cli("compute_fbank", "--data", data, "--out", out, "--no-progress", *extra)


def _break_first_wav(data: Path, content: bytes) -> tuple:
    wavs = DataDir(data).read("wav.scp")
    utt, path = next(iter(wavs.items()))
    Path(path).write_bytes(content)
    return utt, path


@pytest.mark.parametrize("kind", ["corrupt", "empty_file", "truncated", "missing"])
def test_bad_audio_is_one_line_error_and_keeps_old_outputs(tiny_datadir, tmp_path, kind):
    out = tmp_path / "fbank"
    rc, err = _fbank(tiny_datadir, out)
    assert rc == 0, err
    old_ark = (out / "feats.ark").read_bytes()
    old_scp = (out / "feats.scp").read_text()
    wavs = DataDir(tiny_datadir).read("wav.scp")
    utt, path = next(iter(wavs.items()))
    if kind == "corrupt":
        Path(path).write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    elif kind == "empty_file":
        Path(path).write_bytes(b"")
    elif kind == "truncated":  # a valid header whose data chunk stops after 10 samples
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[:44 + 20])
    else:
        Path(path).unlink()
    rc, err = _fbank(tiny_datadir, out)
    assert rc == 1
    line = one_line_error(err)
    assert "wav.scp:1" in line and utt in line, line
    # nothing already written is lost or half-written
    assert (out / "feats.ark").read_bytes() == old_ark
    assert (out / "feats.scp").read_text() == old_scp
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_wrong_sample_rate_is_resampled_on_read(tiny_datadir, tmp_path):
    """wav.scp entries may have any rate: an 8 kHz copy gives (nearly) the same fbank as the 16 kHz one."""
    from speechkd.data.audio import load_audio
    from speechkd.features.kaldi import fbank
    from scipy.signal import resample_poly

    wavs = DataDir(tiny_datadir).read("wav.scp")
    utt, path = next(iter(wavs.items()))
    x16 = load_audio(path, 16000)
    x8 = resample_poly(x16, 1, 2).astype(np.float32)
    sf.write(tmp_path / "a8k.wav", x8, 8000)
    back = load_audio(str(tmp_path / "a8k.wav"), 16000)
    assert abs(len(back) - len(x16)) <= 1
    import torch
    f16 = fbank(torch.from_numpy(x16[: len(back)]))
    f8 = fbank(torch.from_numpy(back[: len(x16)]))
    # low mel bins (below 4 kHz) agree; the top is band-limited by the 8 kHz copy
    assert torch.mean(torch.abs(f16[:, :40] - f8[:, :40])) < 0.5


def test_utterance_missing_from_text(tiny_datadir):
    d = DataDir(tiny_datadir)
    text = d.read("text")
    text.pop(next(iter(text)))
    write_kv(d.file("text"), text)
    rc, err = run_cli("validate_data_dir", tiny_datadir)
    assert rc == 1
    line = one_line_error(err)
    assert "text" in line and "missing" in line, line


def test_unknown_utterance_id(tiny_datadir):
    d = DataDir(tiny_datadir)
    with open(d.file("utt2lang"), "a") as f:
        f.write("zzz-nobody en\n")
    rc, err = run_cli("validate_data_dir", tiny_datadir)
    assert rc == 1
    line = one_line_error(err)
    assert "utt2lang:7" in line and "zzz-nobody" in line, line


def test_empty_transcript(tiny_datadir, tmp_path):
    d = DataDir(tiny_datadir)
    lines = d.file("text").read_text().splitlines()
    lines[3] = lines[3].split()[0]
    d.file("text").write_text("\n".join(lines) + "\n")
    rc, err = run_cli("make_tokens", "--kind", "char", "--text", d.file("text"), "--out", tmp_path / "tok")
    assert rc == 1
    line = one_line_error(err)
    assert "text:4" in line, line
    assert not (tmp_path / "tok" / "units.txt").exists()


def test_unknown_characters_map_to_unk_or_fail_in_strict_mode(tmp_path):
    from speechkd.asr.tokenizer import build_tokenizer, load_tokenizer
    from speechkd.utils.errors import DataError

    build_tokenizer("char", ["ab ba"], tmp_path / "tok")
    tok = load_tokenizer(tmp_path / "tok")
    ids = tok.encode("ab zq")
    assert ids.count(tok.unk_id) == 2 and len(ids) == 5
    strict = load_tokenizer(tmp_path / "tok", strict=True)
    with pytest.raises(DataError, match=r"data/x/text:3"):
        strict.encode("ab zq", where="data/x/text:3")


def test_nan_features_are_named(tiny_datadir, tmp_path):
    """NaN/inf audio never reaches a feature file: the reader names the utterance."""
    wavs = DataDir(tiny_datadir).read("wav.scp")
    utt, path = next(iter(wavs.items()))
    x = np.zeros(8000, dtype=np.float32)
    x[100] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    rc, err = _fbank(tiny_datadir, tmp_path / "fbank")
    assert rc == 1
    line = one_line_error(err)
    assert utt in line and "NaN" in line, line


def test_inf_in_feats_scp_stops_training_naming_file_line_and_utt(tiny_datadir, tmp_path):
    """An inf already inside a feats.scp stops training before any step, naming the scp line and utt."""
    import kaldiio

    from speechkd.features.extract import extract_features

    scp = extract_features(tiny_datadir, tmp_path / "fbank", progress=False)
    feats = dict(kaldiio.load_scp(str(scp)))
    bad = sorted(feats)[0]
    feats = {k: np.array(v) for k, v in feats.items()}
    feats[bad][3, 5] = np.inf
    kaldiio.save_ark(str(tmp_path / "bad.ark"), feats, scp=str(tiny_datadir / "feats.scp"))
    rc, err = run_cli("make_tokens", "--kind", "char", "--text", tiny_datadir / "text", "--out", tmp_path / "tok")
    assert rc == 0, err
    rc, err = run_cli("finetune", "--train-data", tiny_datadir, "--token-dir", tmp_path / "tok",
                      "--exp", tmp_path / "exp", "--data.text_file", "text", "--model.encoder.frontend", "fbank",
                      "--model.encoder.d_model", "32",
                      "--model.encoder.n_layers", "1", "--model.encoder.n_heads", "2",
                      "--model.encoder.ffn_dim", "64", "--model.encoder.pos_conv_kernel", "8",
                      "--model.encoder.pos_conv_groups", "4", "--train.max_steps", "3",
                      "--train.progress", "false", "--train.tensorboard", "false",
                      "--data.batch_seconds", "100")
    assert rc == 1
    line = one_line_error(err)
    assert "feats.scp:1" in line and bad in line and "NaN/inf" in line, line
    assert not (tmp_path / "exp" / "model").exists()


def test_mismatched_checkpoint_config(tmp_path):
    from speechkd.models.checkpoint import save_checkpoint
    from speechkd.models.ssl import mini_ssl
    from speechkd.utils.config import load_yaml, save_config

    model = mini_ssl(n_layers=2, d_model=32, n_heads=2, ffn_dim=64, pos_conv_kernel=8, pos_conv_groups=4)
    save_checkpoint(tmp_path / "ckpt", model, {"model": {"type": "ssl", **model.cfg.to_dict()}})
    cfg = load_yaml(tmp_path / "ckpt" / "config.yaml")
    cfg["model"]["n_layers"] = 3
    save_config(cfg, tmp_path / "ckpt" / "config.yaml")
    rc, err = run_cli("export", "--ckpt", tmp_path / "ckpt", "--out", tmp_path / "hf")
    assert rc == 1
    line = one_line_error(err)
    assert "ckpt" in line and "encoder.layers.2" in line, line
    assert not (tmp_path / "hf").exists()


def test_zoo_card_missing_log_writes_no_zoo_entry(tmp_path):
    """speechkd-zoo-card reads its inputs before copying: a missing train log is a one-line error and no
    zoo entry (a checkpoint without its card) is left behind."""
    from speechkd.bin.zoo_card import main as card_main
    from speechkd.models.checkpoint import save_checkpoint
    from speechkd.models.ssl import SSLConfig, SSLModel

    model = SSLModel(SSLConfig(frontend="fbank", d_model=32, n_layers=1, n_heads=2, ffn_dim=64,
                               pos_conv_kernel=8, pos_conv_groups=4))
    src = save_checkpoint(tmp_path / "iter1" / "model", model)
    with pytest.raises(SystemExit) as e:
        card_main(["--name", "ssl_ml", "--model", str(src), "--out", str(tmp_path / "zoo" / "ssl_ml"),
                   "--summary", "x", "--train-log", f"iteration 2={tmp_path / 'iter2' / 'train.log'}"])
    assert e.value.code != 0
    assert not (tmp_path / "zoo").exists()
