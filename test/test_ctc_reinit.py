"""finetune.reinit_top_layers: the top N layers of an initialised encoder get fresh weights, the rest stay."""
import pytest
import torch

from speechkd.utils.errors import ConfigError


def test_reinit_top_layers_from_checkpoint(tmp_path):
    from speechkd.models.checkpoint import save_checkpoint
    from speechkd.models.ssl import SSLConfig, SSLModel
    from speechkd.train.ctc import FINETUNE_DEFAULTS, build_ctc_model
    from speechkd.utils.config import merge

    torch.manual_seed(0)
    src = SSLModel(SSLConfig(frontend="fbank", d_model=32, n_layers=3, n_heads=2, ffn_dim=64, pos_conv_kernel=8,
                             pos_conv_groups=4, num_labels=5, final_dim=8, arch="hubert"))
    save_checkpoint(tmp_path / "ssl", src, {"model": src.model_config()})
    cfg = merge(FINETUNE_DEFAULTS, {"finetune": {"reinit_top_layers": 1}})
    model = build_ctc_model(cfg, vocab_size=7, init=tmp_path / "ssl")
    got, ref = model.encoder.encoder.layers, src.encoder.layers
    for i in (0, 1):   # kept
        for (k, a), b in zip(got[i].state_dict().items(), ref[i].state_dict().values()):
            assert torch.equal(a, b), k
    changed = [k for (k, a), b in zip(got[2].state_dict().items(), ref[2].state_dict().values())
               if not torch.equal(a, b)]
    assert any("weight" in k for k in changed)
    assert torch.equal(model.encoder.encoder.layer_norm.weight, src.encoder.layer_norm.weight)
    with pytest.raises(ConfigError, match="reinit_top_layers=4"):
        build_ctc_model(merge(FINETUNE_DEFAULTS, {"finetune": {"reinit_top_layers": 4}}), 7, tmp_path / "ssl")


def test_init_weights_false_takes_only_the_architecture(tmp_path):
    from speechkd.models.checkpoint import save_checkpoint
    from speechkd.models.ssl import SSLConfig, SSLModel
    from speechkd.train.ctc import FINETUNE_DEFAULTS, build_ctc_model
    from speechkd.utils.config import merge

    torch.manual_seed(0)
    src = SSLModel(SSLConfig(frontend="cnn", conv_layers=[[8, 10, 5], [8, 3, 2]], d_model=24, n_layers=2,
                             n_heads=2, ffn_dim=48, pos_conv_kernel=8, pos_conv_groups=4, num_labels=5, final_dim=8))
    save_checkpoint(tmp_path / "ssl", src, {"model": src.model_config()})
    cfg = merge(FINETUNE_DEFAULTS, {"finetune": {"init_weights": False}})
    model = build_ctc_model(cfg, vocab_size=7, init=tmp_path / "ssl")
    arch = lambda c: {k: v for k, v in c.to_dict().items()                            # noqa: E731
                      if k not in FINETUNE_DEFAULTS["finetune"]["init_overrides"] + ["num_labels"]}
    assert arch(model.encoder.cfg) == arch(src.cfg)                                   # same architecture
    ref = {k: v for k, v in src.state_dict().items() if not k.startswith("head.")}
    got = {k[len("encoder."):]: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    assert set(got) == set(ref)
    weights = [k for k in ref if k.endswith("weight") and ref[k].dim() > 1]
    assert weights and not any(torch.equal(got[k], ref[k]) for k in weights)           # none copied
    kept = build_ctc_model(FINETUNE_DEFAULTS, vocab_size=7, init=tmp_path / "ssl")
    assert all(torch.equal(kept.state_dict()[f"encoder.{k}"], ref[k]) for k in weights)
