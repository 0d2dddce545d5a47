"""HuBERT targets written once into ark/scp (iteration 1 on MFCC, iteration 2 on a model layer), the label
quality measures, the paper's masking fraction, and pretraining from precomputed targets."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from speechkd.utils.config import load_config
from speechkd.utils.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "egs" / "mini_espeak" / "asr" / "conf"
TINY_MODEL = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.ffn_dim=64",
              "model.pos_conv_kernel=8", "model.pos_conv_groups=4", "model.final_dim=16"]
QUIET = ["train.progress=false", "train.tensorboard=false"]


@pytest.fixture
def mfcc_and_fbank(tiny_datadir, tmp_path):
    """(fbank data dir, mfcc data dir): the tiny data dir with feats.scp = Fbank, and a copy with MFCC."""
    from speechkd.features.extract import extract_features

    mfcc_dir = tmp_path / "mfcc_data"
    shutil.copytree(tiny_datadir, mfcc_dir)
    scp = extract_features(tiny_datadir, tmp_path / "fbank", kind="fbank", progress=False)
    shutil.copyfile(scp, tiny_datadir / "feats.scp")
    scp = extract_features(mfcc_dir, tmp_path / "mfcc", kind="mfcc", progress=False)
    shutil.copyfile(scp, mfcc_dir / "feats.scp")
    return tiny_datadir, mfcc_dir


def _write_ctm(path, utts_frames, n_phones=3):
    """A CTM whose phones change every 5 frames (0.1 s), cycling over n_phones phones."""
    lines = []
    for utt, n in utts_frames.items():
        for k in range(0, n, 5):
            lines.append(f"{utt} 1 {k * 0.02:.2f} 0.10 p{(k // 5) % n_phones}\n")
    Path(path).write_text("".join(lines))


def test_label_quality_perfect_and_random():
    from speechkd.train.hubert_targets import label_quality

    rng = np.random.default_rng(0)
    phones = {f"u{i}": rng.integers(0, 5, 400) for i in range(5)}
    perfect = label_quality(phones, phones, 5)
    assert perfect["phone_purity"] == pytest.approx(1.0) and perfect["pnmi"] == pytest.approx(1.0)
    noise = label_quality({u: rng.integers(0, 5, 400) for u in phones}, phones, 5)
    assert noise["pnmi"] < 0.02 and noise["phone_purity"] < 0.35


def test_frame_phones_centres(tmp_path):
    from speechkd.train.hubert_targets import frame_phones

    (tmp_path / "p.ctm").write_text("a 1 0.00 0.05 x\na 1 0.05 0.07 y\n")
    lab = frame_phones(tmp_path / "p.ctm", {"a": 8})["a"]
    # frames of 20 ms, centres at 10, 30, 50, 70 ... ms: x covers 0-50 ms, y 50-120 ms
    assert lab.tolist() == [0, 0, 1, 1, 1, 1, -1, -1]


def test_iteration1_and_iteration2_targets(mfcc_and_fbank, tmp_path):
    from speechkd.bin.hubert_targets import main as targets_main
    from speechkd.models.kmeans import KMeans
    from speechkd.train.hubert import PRETRAIN_DEFAULTS, pretrain_hubert
    from speechkd.train.hubert_targets import model_layer_frames, read_targets

    fbank_dir, mfcc_dir = mfcc_and_fbank
    # iteration 1: MFCC k-means into ark/scp, scored against a CTM
    import kaldiio

    n_frames = {u: (m.shape[0] + 1) // 2 for u, m in kaldiio.load_scp(str(mfcc_dir / "feats.scp")).items()}
    _write_ctm(mfcc_dir / "phones.ctm", n_frames)
    it1 = tmp_path / "targets" / "iter1"
    with pytest.raises(SystemExit) as e:
        targets_main(["--kind", "mfcc", "--out", str(it1), "--set", f"train={mfcc_dir}",
                      "--kmeans.n_clusters", "6"])
    assert e.value.code == 0
    lab1 = read_targets(it1 / "train" / "labels.scp")
    assert set(lab1) == set(n_frames)
    for u, lab in lab1.items():  # 100 Hz MFCC frames, every second one kept: 50 Hz
        assert len(lab) == n_frames[u] and lab.min() >= 0 and lab.max() < 6
    stats = json.loads((it1 / "stats.json").read_text())
    assert stats["n_clusters"] == 6 and 0 < stats["sets"]["train"]["pnmi"] <= 1
    assert not list(it1.glob("train/*.tmp*"))

    # pretraining reads the precomputed targets (no MFCC computed: the fbank dir has no MFCC at all)
    cfg = load_config(CONF / "pretrain_smoke.yaml", TINY_MODEL + QUIET + [
        "train.max_steps=4", "data.batch_seconds=3", f"targets.train={it1}/train/labels.scp",
        f"targets.kmeans={it1}/kmeans.pt"], defaults=PRETRAIN_DEFAULTS)
    model_dir = pretrain_hubert(cfg, fbank_dir, None, tmp_path / "iter1")
    assert KMeans.load(model_dir / "kmeans.pt").n_clusters == 6

    # iteration 2: k-means of layer 1 of that model; labels at the model's frame rate
    feats = model_layer_frames(model_dir, fbank_dir, layer=1, precision="fp32", progress=False)
    it2 = tmp_path / "targets" / "iter2"
    with pytest.raises(SystemExit) as e:
        targets_main(["--kind", "model", "--model", str(model_dir), "--layer", "1", "--out", str(it2),
                      "--set", f"train={fbank_dir}", "--precision", "fp32", "--no-progress",
                      "--kmeans.n_clusters", "4"])
    assert e.value.code == 0
    lab2 = read_targets(it2 / "train" / "labels.scp")
    km2 = KMeans.load(it2 / "kmeans.pt")
    assert km2.centroids.shape == (4, 32)
    for u, f in feats.items():
        assert torch.equal(lab2[u], km2.predict(f.float()))   # the written labels are the codebook's
    stats2 = json.loads((it2 / "stats.json").read_text())
    assert stats2["layer"] == 1 and stats2["kind"] == "model"

    # iteration 2 warm-started from iteration 1 (init): encoder copied before training, new 4-label head
    from speechkd.models.checkpoint import load_checkpoint
    from speechkd.models.ssl import SSLConfig, SSLModel
    from speechkd.train.hubert import warm_start_encoder

    it1_model, it1_cfg = load_checkpoint(model_dir)
    fresh = SSLModel(SSLConfig.from_dict(dict(it1_cfg["model"], num_labels=4)))
    warm_start_encoder(fresh, model_dir)
    src = it1_model.state_dict()
    for k, v in fresh.state_dict().items():
        if k.startswith("head.label_embs"):
            assert v.shape == (4, 16)
        elif not k.startswith("head."):
            assert torch.equal(v, src[k]), k
    cfg2 = load_config(CONF / "pretrain_smoke.yaml", TINY_MODEL + QUIET + [
        "train.max_steps=2", "data.batch_seconds=3", f"targets.train={it2}/train/labels.scp",
        f"targets.kmeans={it2}/kmeans.pt", f"init={model_dir}"], defaults=PRETRAIN_DEFAULTS)
    assert pretrain_hubert(cfg2, fbank_dir, None, tmp_path / "iter2").is_dir()
    wide = SSLModel(SSLConfig.from_dict(dict(it1_cfg["model"], num_labels=4, d_model=48, n_heads=2)))
    with pytest.raises(ConfigError, match=r"does not match the model config: key '.*' has shape"):
        warm_start_encoder(wide, model_dir)


def test_model_layer_frames_rejects_bad_layer(mfcc_and_fbank, tmp_path):
    from speechkd.models.checkpoint import save_checkpoint
    from speechkd.models.ssl import SSLConfig, SSLModel
    from speechkd.train.hubert_targets import model_layer_frames

    model = SSLModel(SSLConfig(frontend="fbank", d_model=32, n_layers=2, n_heads=2, ffn_dim=64,
                               pos_conv_kernel=8, pos_conv_groups=4))
    save_checkpoint(tmp_path / "m", model, {"model": model.model_config()})
    with pytest.raises(ValueError, match="layer 3 out of range"):
        model_layer_frames(tmp_path / "m", mfcc_and_fbank[0], layer=3)


def test_default_masking_covers_about_half_of_the_frames():
    """HuBERT's mask_prob 0.8 with spans of 10: 40-60 % of the frames of 2-10 s utterances are masked."""
    from speechkd.models.masking import compute_mask_indices
    from speechkd.train.hubert import PRETRAIN_DEFAULTS

    m = PRETRAIN_DEFAULTS["model"]
    assert (m["mask_time_prob"], m["mask_time_length"]) == (0.8, 10)
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([100, 180, 250, 320, 400, 500])
    fracs = []
    for _ in range(20):
        mask = compute_mask_indices((6, 500), m["mask_time_prob"], m["mask_time_length"], lengths, 2, g)
        fracs.append(float(mask.sum()) / float(lengths.sum()))
    mean = sum(fracs) / len(fracs)
    assert 0.40 <= mean <= 0.60, mean
    # and the zoo's pretraining config masks the same way
    zoo = load_config(Path(__file__).resolve().parents[1] / "egs/mini_espeak/ssl/conf/pretrain.yaml")
    assert (zoo["model"]["mask_time_prob"], zoo["model"]["mask_time_length"]) == (0.8, 10)
