"""Speech → speech distillation training library (speechkd.distill.train, .data, .student) and the
speechkd-distill CLI."""
from __future__ import annotations

import shutil

import pytest
import torch

from speechkd.distill.data import PairedDataset, paired_collate, spec_augment
from speechkd.distill.losses import codebook_logits, frontend_loss, kl_div_loss
from speechkd.distill.student import build_student_from_config
from speechkd.distill.train import DISTILL_DEFAULTS, DistillTask, distill
from speechkd.models.checkpoint import load_checkpoint, load_train_state, save_checkpoint
from speechkd.models.ssl import SSLConfig, SSLModel
from speechkd.utils.config import apply_overrides, merge
from speechkd.utils.errors import ConfigError

TINY = dict(conv_layers=[[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]],
            d_model=32, n_heads=4, ffn_dim=64, n_layers=4, pos_conv_kernel=8, pos_conv_groups=4,
            final_dim=8, num_labels=10, arch="hubert", dropout=0.0, attention_dropout=0.0, proj_dropout=0.0,
            layerdrop=0.0)
FAST = ["train.progress=false", "train.tensorboard=false", "train.log_interval=1", "data.batch_seconds=3",
        "optim.warmup_steps=0", "optim.lr=3e-3"]


@pytest.fixture
def teacher_dir(tmp_path):
    torch.manual_seed(0)
    t = SSLModel(SSLConfig.from_dict(TINY))
    save_checkpoint(tmp_path / "teacher", t, {"model": t.model_config()})
    return tmp_path / "teacher"


@pytest.fixture
def data_with_feats(tiny_datadir, tmp_path):
    from speechkd.features.extract import extract_features

    scp = extract_features(tiny_datadir, tmp_path / "fbank", kind="fbank", progress=False)
    shutil.copyfile(scp, tiny_datadir / "feats.scp")
    return tiny_datadir


def _cfg(*over):
    return apply_overrides(merge(DISTILL_DEFAULTS, {}), FAST + list(over))


def _losses(log_path, key):
    out = []
    for line in log_path.read_text().splitlines():
        if "[train]" in line:
            parts = line.split()
            out.append(float(parts[parts.index(key) + 1]))
    return out


def test_spec_augment_masks_inside_valid_frames():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(2, 50, 20)
    y = spec_augment(x, torch.tensor([50, 30]), freq_masks=1, freq_width=5, time_masks=0, generator=g)
    assert y.shape == x.shape and y.sum() < x.sum()
    band = (y[0] == 0).all(0)                            # a frequency band masked over all frames
    assert 1 <= int(band.sum()) <= 4
    y = spec_augment(x, torch.tensor([50, 30]), freq_masks=0, time_masks=3, time_width=10, generator=g)
    assert y.sum() < x.sum()
    assert torch.equal(y[1, 30:], x[1, 30:])           # time masks stay inside the valid frames
    assert int((y[0] == 0).all(1).sum()) <= 27          # at most 3 spans of < 10 frames
    z = spec_augment(x, None, 0, 10, 0, 10)
    assert torch.equal(z, x)                             # no masks: unchanged


def test_paired_dataset_and_collate(data_with_feats):
    from speechkd.data.dataset import FeatsDataset, WavDataset

    ws, fs = WavDataset(data_with_feats), FeatsDataset(data_with_feats)
    ds = PairedDataset(ws, fs)
    assert ds.utts == ws.utts and ds.lengths == ws.lengths
    b = paired_collate([ds[0], ds[3]])
    assert b["x"].shape == (2, max(ws.lengths[0], ws.lengths[3]))
    assert b["s_x"].shape[-1] == 80
    assert b["s_x_lengths"].tolist() == [fs.lengths[0], fs.lengths[3]]
    short = int(b["s_x_lengths"].min())
    i = int(b["s_x_lengths"].argmin())
    assert torch.all(b["s_x"][i, short:] == 0)        # zero padded (not -1)


def test_student_config_and_init(teacher_dir):
    teacher, _ = load_checkpoint(teacher_dir)
    scfg = merge(DISTILL_DEFAULTS["student"], {"n_layers": 2, "init": [1, 3]})
    s = build_student_from_config(teacher, scfg)
    assert s.cfg.n_layers == 2 and s.cfg.num_labels == 0
    for i, k in enumerate([1, 3]):
        for a, b in zip(s.encoder.layers[i].parameters(), teacher.encoder.layers[k - 1].parameters()):
            assert torch.equal(a, b)
    torch.manual_seed(1)
    s_none = build_student_from_config(teacher, merge(scfg, {"init": "none"}))
    assert not torch.equal(next(iter(s_none.encoder.layers[0].parameters())),
                           next(iter(teacher.encoder.layers[0].parameters())))
    # the CNN front-end is still copied with init none (init_frontend true)
    assert all(torch.equal(a, b) for a, b in zip(s_none.feature_extractor.parameters(),
                                                teacher.feature_extractor.parameters()))
    with pytest.raises(ConfigError):
        build_student_from_config(teacher, merge(scfg, {"init": "middle"}))


def test_task_loss_matches_hand_computation(teacher_dir, data_with_feats):
    """Total = w_rec·ΣL1 + w_cos·Σcos + w_disc·KL, with the KL recomputed from the teacher's head."""
    from speechkd.data.dataset import WavDataset
    from speechkd.distill.losses import regression_loss

    teacher, _ = load_checkpoint(teacher_dir)
    cfg = _cfg("student.n_layers=2", "loss.w_disc=0.5", "loss.w_rec=2.0", "distill.target_layers=[2,4]")
    torch.manual_seed(0)
    student = build_student_from_config(teacher, cfg["student"])
    task = DistillTask(teacher, student, cfg).eval()
    ws = WavDataset(data_with_feats)
    batch = paired_collate([ws[0], ws[1]])
    loss, logs = task(batch)
    with torch.no_grad():
        t_out = teacher(batch["x"], batch["x_lengths"])
        s_out = task.distiller(batch["x"], batch["x_lengths"])
        reg, _ = regression_loss(s_out.preds, [t_out.hidden_states[2], t_out.hidden_states[4]],
                                 padding_mask=t_out.padding_mask, l1_weight=2.0)
        t_log = codebook_logits(teacher.head.final_proj(t_out.last_hidden_state), teacher.head.label_embs, 0.1)
        s_log = codebook_logits(task.loss.disc_head.proj(s_out.student.last_hidden_state), teacher.head.label_embs, 0.1)
        kl = kl_div_loss(t_log, s_log, t_out.padding_mask)
    assert torch.allclose(loss, reg + 0.5 * kl, atol=1e-5)
    assert set(logs) >= {"l1/2", "l1/4", "cos/2", "cos/4", "kl", "loss"}
    # the type1 head starts random by default; loss.disc_head_init=teacher copies the teacher's final_proj
    assert not torch.equal(task.loss.disc_head.proj.weight, teacher.head.final_proj.weight)
    copied = DistillTask(teacher, build_student_from_config(teacher, cfg["student"]),
                         merge(cfg, {"loss": {"disc_head_init": "teacher"}}))
    assert torch.equal(copied.loss.disc_head.proj.weight, teacher.head.final_proj.weight)
    with pytest.raises(ConfigError, match="disc_head_init"):
        DistillTask(teacher, student, merge(cfg, {"loss": {"disc_head_init": "copy"}}))
    # the teacher is not part of the module tree (not trained, not saved)
    assert not any(k.startswith("_teacher") for k in task.state_dict())


def test_skip_last_drops_the_codebook_layer_from_the_targets(teacher_dir):
    teacher, _ = load_checkpoint(teacher_dir)
    student = build_student_from_config(teacher, _cfg("student.n_layers=2")["student"])
    task = DistillTask(teacher, student, _cfg("student.n_layers=2", "distill.skip_last=true", "loss.w_disc=1.0"))
    assert task.target_layers == [1, 2, 3] and task.loss.disc_head is not None   # 4-layer teacher: 1..4 → 1..3
    with pytest.raises(ConfigError, match="skip_last"):
        DistillTask(teacher, student, _cfg("distill.target_layers=[4]", "distill.skip_last=true"))


def test_disc_needs_hubert_head(tmp_path):
    t = SSLModel(SSLConfig.from_dict({**TINY, "num_labels": 0}))
    cfg = _cfg("loss.w_disc=1.0")
    with pytest.raises(ConfigError, match="HuBERT head"):
        DistillTask(t, build_student_from_config(t, cfg["student"]), cfg)


def test_distill_cnn_student_runs_and_saves_ssl(teacher_dir, tiny_datadir, tmp_path):
    cfg = _cfg("student.n_layers=2", "loss.w_disc=1.0", "train.max_steps=8", "student.head=layerwise")
    out = distill(cfg, teacher_dir, tiny_datadir, tiny_datadir, tmp_path / "st")
    model, c = load_checkpoint(out)
    assert c["model"]["type"] == "ssl" and model.cfg.n_layers == 2 and model.head is None
    assert c["distill"]["target_layers"] == [1, 2, 3, 4]
    losses = _losses(tmp_path / "st" / "train.log", "loss")
    assert len(losses) == 8 and min(losses[-3:]) < losses[0]
    st = load_train_state(tmp_path / "st" / "checkpoints" / "step_8")
    assert any(k.startswith("distiller.heads.") for k in st["full_model"])        # heads kept for resume
    assert any(k.startswith("loss.disc_head.") for k in st["full_model"])
    assert not any(k.startswith("heads") for k in torch.load(out / "model.pt"))    # dropped from the model


def test_fbank_student_frontend_stage_then_full(teacher_dir, data_with_feats, tmp_path):
    """Stage A trains only the Fbank front-end (+ projection) towards the teacher CNN output; stage B
    loads it, keeps it frozen and distils the rest."""
    common = ["student.n_layers=2", "student.frontend=fbank", "student.overrides={fbank_channels: 16}"]
    cfg_a = _cfg(*common, "distill.stage=frontend", "train.max_steps=10")
    torch.manual_seed(0)
    a = distill(cfg_a, teacher_dir, data_with_feats, None, tmp_path / "fe")
    fe_losses = _losses(tmp_path / "fe" / "train.log", "fe_l1")
    assert fe_losses[-1] < fe_losses[0]
    sa, _ = load_checkpoint(a)
    assert (a / "cmvn.npz").exists()
    teacher, _ = load_checkpoint(teacher_dir)
    ref = build_student_from_config(teacher, merge(DISTILL_DEFAULTS["student"], cfg_a["student"]))
    # only the front-end and projection changed in stage A
    for (n, p), (_, q) in zip(sa.state_dict().items(), ref.state_dict().items()):
        if n.startswith("encoder.layers."):
            assert torch.equal(p, q), n
    cfg_b = _cfg(*common, f"student.init_from={a}", "student.freeze_frontend=true", "train.max_steps=4")
    b = distill(cfg_b, teacher_dir, data_with_feats, data_with_feats, tmp_path / "full")
    sb, cb = load_checkpoint(b)
    assert cb["model"]["frontend"] == "fbank" and (b / "cmvn.npz").exists()
    assert torch.equal(sb.feature_extractor.conv1.weight, sa.feature_extractor.conv1.weight)    # frozen
    assert not torch.equal(sb.encoder.layers[0].state_dict()[next(iter(sb.encoder.layers[0].state_dict()))],
                           sa.encoder.layers[0].state_dict()[next(iter(sa.encoder.layers[0].state_dict()))])


def test_frontend_stage_loss_is_l1_to_teacher_frontend(teacher_dir, data_with_feats):
    from speechkd.data.dataset import FeatsDataset, WavDataset

    teacher, _ = load_checkpoint(teacher_dir)
    cfg = _cfg("student.frontend=fbank", "distill.stage=frontend")
    task = DistillTask(teacher, build_student_from_config(teacher, cfg["student"]), cfg).eval()
    trainable = [n for n, p in task.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(("distiller.student.feature_extractor.",
                                           "distiller.student.feature_projection.")) for n in trainable)
    ds = PairedDataset(WavDataset(data_with_feats), FeatsDataset(data_with_feats))
    batch = paired_collate([ds[0], ds[2]])
    loss, logs = task(batch)
    with torch.no_grad():
        t, tl = teacher.extract_features(batch["x"], batch["x_lengths"])
        s, sl = task.student.extract_features(batch["s_x"], batch["s_x_lengths"])
    assert abs(float(loss.detach()) - float(frontend_loss(s, t, sl, tl))) < 1e-6
    assert logs["fe_l1"] == pytest.approx(float(loss.detach()))


def test_cli(teacher_dir, tiny_datadir, tmp_path):
    from speechkd.bin.distill import main

    with pytest.raises(SystemExit) as e:
        main(["--teacher", str(teacher_dir), "--train-data", str(tiny_datadir), "--exp", str(tmp_path / "cli"),
              "--student.n_layers", "1", "--train.max_steps", "2", "--train.progress", "false",
              "--train.tensorboard", "false", "--data.batch_seconds", "3"])
    assert e.value.code == 0
    assert (tmp_path / "cli" / "model" / "model.pt").exists()
    with pytest.raises(SystemExit) as e:
        main(["--teacher", str(teacher_dir), "--train-data", str(tiny_datadir), "--exp", str(tmp_path / "bad"),
              "--distill.stage", "middle", "--train.max_steps", "2"])
    assert e.value.code == 1


def test_match_layers_and_frontend_freezing(teacher_dir):
    """match_layers gives a deeper, thinner student with about the parameters of the 2-layer one; with
    freeze_frontend the CNN is frozen, and the projection too only when it was copied (same width)."""
    from speechkd.distill.student import count_params

    teacher, _ = load_checkpoint(teacher_dir)
    sw = build_student_from_config(teacher, merge(DISTILL_DEFAULTS["student"], {"n_layers": 2}))
    dt = build_student_from_config(teacher, merge(DISTILL_DEFAULTS["student"], {"n_layers": 4, "match_layers": 2}))
    assert dt.cfg.n_layers == 4 and dt.cfg.d_model < sw.cfg.d_model
    assert abs(count_params(dt.cfg) - count_params(sw.cfg)) / count_params(sw.cfg) < 0.1
    for student, proj_frozen in ((sw, True), (dt, False)):
        cfg = _cfg("student.freeze_frontend=true")
        task = DistillTask(teacher, student, cfg)
        grads = {n: p.requires_grad for n, p in task.student.named_parameters()}
        assert not any(v for n, v in grads.items() if n.startswith("feature_extractor."))
        assert all(not v for n, v in grads.items() if n.startswith("feature_projection.")) == proj_frozen
        assert all(v for n, v in grads.items() if n.startswith("encoder."))


def test_fbank_teacher_and_student_share_one_input(tmp_path, data_with_feats):
    """A Fbank teacher and a Fbank student with the same CMVN read the features once (no paired input)."""
    from speechkd.features.cmvn import compute_cmvn_from_scp

    torch.manual_seed(0)
    t = SSLModel(SSLConfig.from_dict({**TINY, "frontend": "fbank", "fbank_channels": 16}))
    save_checkpoint(tmp_path / "fbt", t, {"model": t.model_config()})
    compute_cmvn_from_scp(data_with_feats / "feats.scp", progress=False).save(tmp_path / "fbt" / "cmvn.npz")
    cfg = _cfg("student.n_layers=1", "student.frontend=fbank", "train.max_steps=2")
    seen = []
    orig = DistillTask.forward

    def spy(self, batch):
        seen.append("s_x" in batch)
        return orig(self, batch)

    DistillTask.forward = spy
    try:
        out = distill(cfg, tmp_path / "fbt", data_with_feats, None, tmp_path / "fbs")
    finally:
        DistillTask.forward = orig
    assert seen and not any(seen)
    assert (out / "cmvn.npz").read_bytes() == (tmp_path / "fbt" / "cmvn.npz").read_bytes()


def test_type2_head_and_spec_augment_in_training(teacher_dir, data_with_feats):
    """type2: direct logits over the teacher's K labels; SpecAugment changes only the training input."""
    from speechkd.data.dataset import FeatsDataset, WavDataset

    teacher, _ = load_checkpoint(teacher_dir)
    cfg = _cfg("student.n_layers=1", "student.frontend=fbank", "loss.w_disc=1.0", "loss.disc_kind=type2",
               "spec_augment.enabled=true", "spec_augment.time_masks=4", "spec_augment.time_width=30")
    task = DistillTask(teacher, build_student_from_config(teacher, cfg["student"]), cfg)
    assert task.loss.disc_head.kind == "type2" and task.loss.disc_head.proj.out_features == 10
    ds = PairedDataset(WavDataset(data_with_feats), FeatsDataset(data_with_feats))
    batch = paired_collate([ds[0], ds[1]])
    task.train()
    x_train, _ = task.student_input(batch)
    task.eval()
    x_eval, _ = task.student_input(batch)
    assert torch.equal(x_eval, batch["s_x"]) and not torch.equal(x_train, batch["s_x"])
    loss, logs = task(batch)
    assert torch.isfinite(loss) and logs["kl"] >= 0
