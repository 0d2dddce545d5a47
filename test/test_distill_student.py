"""Student construction: parameter counting, presets, layer-jumping init, heads, Distiller."""
import pytest
import torch

from speechkd.distill.losses import frontend_loss, regression_loss
from speechkd.distill.student import (PRESETS, Distiller, ExpandLastHead, LayerwiseHeads, count_params,
                                      default_target_layers, init_student_from_teacher, jump_layers,
                                      preset_config, student_config, teacher_targets)
from speechkd.models.ssl import SSLConfig, SSLModel, mini_ssl
from speechkd.utils.errors import ConfigError

TINY = dict(conv_layers=[[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]],
            d_model=32, n_heads=4, ffn_dim=64, n_layers=4, pos_conv_kernel=8, pos_conv_groups=4,
            final_dim=8, dropout=0.0, attention_dropout=0.0, proj_dropout=0.0, layerdrop=0.0)


def _n(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("extra", [{}, {"frontend": "fbank", "fbank_channels": 24}, {"num_labels": 7},
                                   {"conv_norm": "layer_norm", "conv_bias": True, "layer_norm_first": True},
                                   {"pos_conv_kernel": 0, "proj_layer_norm": False}])
def test_count_params_matches_model(extra):
    cfg = SSLConfig.from_dict({**TINY, **extra})
    assert count_params(cfg) == _n(SSLModel(cfg))


def test_presets_equal_budget():
    for teacher in (SSLConfig(), mini_ssl().cfg):            # wav2vec2/HuBERT Base and the mini teacher
        for fe in ("cnn", "fbank"):
            cfgs = {name: preset_config(teacher, name, frontend=fe) for name in PRESETS}
            ref = count_params(cfgs["shallow_wide"])
            assert cfgs["shallow_wide"].d_model == teacher.d_model
            assert cfgs["deep_thin"].n_layers == teacher.n_layers
            assert cfgs["deep_thin"].d_model < cfgs["middle"].d_model < teacher.d_model
            for c in cfgs.values():
                assert abs(count_params(c) - ref) / ref < 0.05
                assert c.d_model % c.n_heads == 0 and c.d_model % c.pos_conv_groups == 0
                assert c.frontend == fe
    base = preset_config(SSLConfig(), "shallow_wide")
    assert base.n_layers == 2 and abs(count_params(base) - 23.5e6) < 0.1e6       # DistilHuBERT ~23.5M
    with pytest.raises(ConfigError):
        preset_config(SSLConfig(), "huge")


def test_layer_selection():
    assert default_target_layers(12) == [3, 6, 9, 12]
    assert default_target_layers(4) == [1, 2, 3, 4]
    assert jump_layers(24, 12) == list(range(2, 25, 2))
    assert jump_layers(12, 2) == [6, 12]
    assert jump_layers(12, 4, "first") == [1, 2, 3, 4]
    assert jump_layers(12, 2, [1, 7]) == [1, 7]
    with pytest.raises(ConfigError):
        jump_layers(12, 2, [1, 13])


def _teacher():
    torch.manual_seed(0)
    return SSLModel(SSLConfig.from_dict(TINY)).eval()


@pytest.mark.parametrize("mode,expect", [("jump", [2, 4]), ("first", [1, 2]), ([3, 1], [3, 1])])
def test_layer_jumping_copies_the_right_layers(mode, expect):
    teacher = _teacher()
    student = SSLModel(student_config(teacher.cfg, 2))
    assert init_student_from_teacher(student, teacher, mode) == expect
    for i, k in enumerate(expect):
        s_sd, t_sd = student.encoder.layers[i].state_dict(), teacher.encoder.layers[k - 1].state_dict()
        for name in t_sd:
            assert torch.equal(s_sd[name], t_sd[name]), (i, k, name)
        # and not some other teacher layer
        other = teacher.encoder.layers[[j for j in range(4) if j != k - 1][0]].state_dict()
        assert not torch.equal(s_sd["attention.q_proj.weight"], other["attention.q_proj.weight"])
    for mod in ("feature_extractor", "feature_projection"):
        for (n, a), (_, b) in zip(getattr(student, mod).state_dict().items(),
                                  getattr(teacher, mod).state_dict().items()):
            assert torch.equal(a, b), n
    assert torch.equal(student.encoder.pos_conv_embed.state_dict()["conv.parametrizations.weight.original1"],
                       teacher.encoder.pos_conv_embed.state_dict()["conv.parametrizations.weight.original1"])


def test_width_mismatch():
    teacher = _teacher()
    thin = SSLModel(student_config(teacher.cfg, 2, d_model=16))
    with pytest.raises(ConfigError, match="widths differ"):
        init_student_from_teacher(thin, teacher)
    assert init_student_from_teacher(thin, teacher, layers=None) == []
    for a, b in zip(thin.feature_extractor.parameters(), teacher.feature_extractor.parameters()):
        assert torch.equal(a, b)                                     # CNN still copied
    fb = SSLModel(student_config(teacher.cfg, 2, frontend="fbank"))
    before = fb.feature_extractor.conv1.weight.clone()
    init_student_from_teacher(fb, teacher)                           # fbank front-end left alone
    assert torch.equal(fb.feature_extractor.conv1.weight, before)
    assert torch.equal(fb.encoder.layers[1].attention.q_proj.weight, teacher.encoder.layers[3].attention.q_proj.weight)


def test_heads_shapes():
    hs = [torch.randn(2, 5, 8) * (i + 1) for i in range(4)]
    lw = LayerwiseHeads(8, 6, [1, 3])
    out = lw(hs)
    assert [o.shape for o in out] == [(2, 5, 6)] * 2
    assert torch.allclose(out[1], lw.linears[1](hs[3]))
    ex = ExpandLastHead(8, 6, 3)
    out = ex(hs)
    assert [o.shape for o in out] == [(2, 5, 6)] * 3
    assert torch.allclose(torch.cat(out, -1), ex.linear(hs[-1]))


@pytest.mark.parametrize("head", ["expand_last", "layerwise"])
def test_distiller_end_to_end(head):
    teacher = _teacher()
    student = SSLModel(student_config(teacher.cfg, 2))
    init_student_from_teacher(student, teacher)
    layers = default_target_layers(4, 2)
    d = Distiller(student, layers, teacher_dim=32, head=head, n_teacher_layers=4)
    if head == "layerwise":
        assert d.heads.source_layers == [1, 2]
    x, lens = torch.randn(2, 4000), torch.tensor([4000, 3000])
    out = d(x, lens)
    targets, t_out = teacher_targets(teacher, x, lens, layers)
    assert len(out.preds) == 2 and out.preds[0].shape == targets[0].shape
    assert torch.equal(out.lengths, t_out.lengths)
    loss, logs = regression_loss(out.preds, targets, out.padding_mask, layer_names=layers)
    loss.backward()
    assert student.encoder.layers[0].attention.q_proj.weight.grad.abs().sum() > 0
    assert set(logs) >= {"l1/2", "l1/4", "cos/2", "cos/4"}
    # stage A of hubert_kd: fbank front-end regressed on the teacher CNN+projection output
    fb = SSLModel(student_config(teacher.cfg, 2, frontend="fbank"))
    feats, flen = fb.extract_features(torch.randn(2, 25, 80), torch.tensor([25, 19]))
    fl = frontend_loss(feats, t_out.frontend_out, flen, t_out.lengths)
    fl.backward()
    assert fb.feature_extractor.conv1.weight.grad.abs().sum() > 0


def test_build_student_and_short_distillation_run():
    from speechkd.distill.student import build_student
    teacher = _teacher()
    thin, used = build_student(teacher, preset="deep_thin")
    assert used == [] and thin.cfg.n_layers == 4 and thin.cfg.d_model < 32
    student, used = build_student(teacher, n_layers=2)
    assert used == [2, 4]
    layers = [2, 4]
    d = Distiller(student, layers, teacher_dim=32, head="layerwise", n_teacher_layers=4)
    torch.manual_seed(1)
    x, lens = torch.randn(2, 1600), torch.tensor([1600, 1200])
    targets, _ = teacher_targets(teacher, x, lens, layers)
    opt = torch.optim.Adam(d.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        out = d(x, lens)
        loss, _ = regression_loss(out.preds, targets, out.padding_mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_cnn_student_of_an_fbank_teacher_takes_its_own_conv_layers():
    # the English CNN teacher of the zoo: a waveform CNN put in front of the multilingual Fbank teacher
    teacher = SSLConfig.from_dict({**TINY, "frontend": "fbank", "fbank_channels": 24})
    conv = [[8, 10, 5], [12, 3, 2], [12, 3, 2], [12, 3, 2], [12, 3, 2], [12, 2, 2], [12, 4, 2]]
    cfg = student_config(teacher, 4, frontend="cnn", conv_layers=conv)
    assert cfg.frontend == "cnn" and cfg.conv_layers == conv
    assert student_config(teacher, 4, frontend="cnn").conv_layers == [list(c) for c in teacher.conv_layers]
    student = SSLModel(cfg)
    used = init_student_from_teacher(student, SSLModel(teacher), "jump")
    assert used == [1, 2, 3, 4]
    wav = torch.randn(1, 16000)
    fe, _ = student.extract_features(wav, torch.tensor([16000]))
    assert fe.shape[-1] == teacher.d_model


def test_keep_teacher_head_on_the_teachers_own_layers():
    from speechkd.distill.student import build_student_from_config
    from speechkd.distill.train import DISTILL_DEFAULTS

    teacher = SSLModel(SSLConfig.from_dict({**TINY, "frontend": "fbank", "fbank_channels": 24, "num_labels": 7}))
    conv = [[8, 10, 5], [12, 3, 2], [12, 3, 2], [12, 3, 2], [12, 3, 2], [12, 2, 2], [12, 2, 2]]
    scfg = dict(DISTILL_DEFAULTS["student"], n_layers=4, frontend="cnn", keep_teacher_head=True,
                overrides={"conv_layers": conv})
    student = build_student_from_config(teacher, scfg)
    assert student.cfg.num_labels == 7 and student.head is not None
    for k, v in teacher.head.state_dict().items():
        assert torch.equal(student.head.state_dict()[k], v), k
    with pytest.raises(ConfigError, match="every teacher layer"):
        build_student_from_config(teacher, dict(scfg, n_layers=2))
    with pytest.raises(ConfigError, match="every teacher layer|layers copied"):
        build_student_from_config(teacher, dict(scfg, init="none"))
    headless = SSLModel(SSLConfig.from_dict({**TINY, "frontend": "fbank", "fbank_channels": 24}))
    with pytest.raises(ConfigError, match="HuBERT head"):
        build_student_from_config(headless, scfg)
    assert build_student_from_config(teacher, dict(scfg, keep_teacher_head=False)).head is None
