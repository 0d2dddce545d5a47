"""PAD recipes: the mini_espeak/pad smoke run (corpus → teachers → distillation → intent head → table)
and the SLURP / FSC recipes' data stage on fake corpus trees."""
from __future__ import annotations

import json
import math
import re

import pytest

from recipe_runner import copy_recipe, log_values, run_recipe


def test_mini_pad_smoke(tmp_path, smoke_zoo, monkeypatch):
    d = copy_recipe("mini_espeak/pad", tmp_path)
    monkeypatch.setenv("SPEECHKD_ZOO", str(smoke_zoo))     # teachers: the smoke zoo's ssl_ml and text_ml
    # the smoke config with fewer methods (the default run has them all): cosine baseline and PAD, 2 seeds
    run_recipe(d, "--conf_tag", "smoke", "--methods", "cosine pad", "--seeds", "1 2", "--stop_stage", "7")
    for f in ("data/train/utt2intent", "data/train/words.ctm", "data/test_unseen_para/feats.scp",
              "exp/teacher/model/model.pt", "exp/text_lm/model/config.json", "data/train_sub3_seed2/utt2intent"):
        assert (d / f).exists(), f
    # both teachers are the zoo's, linked: no private speech or text teacher was trained
    for link, name in (("exp/teacher/model", "ssl_ml"), ("exp/text_lm/model", "text_ml")):
        assert (d / link).is_symlink() and (d / link).resolve() == (smoke_zoo / name).resolve(), link
    assert not (d / "exp/teacher/train.log").exists() and not (d / "exp/text_lm_log").exists()
    # 18 intents x 3 labelled utterances
    assert len((d / "data/train_sub3_seed1/utt2intent").read_text().splitlines()) == 54
    # PAD's losses are logged per granularity and the total goes down
    # bounds from the smoke run of 2026-12-03 (last/first loss): PAD 0.91, cosine 0.80 (intent accuracy is
    # at chance, 1/18, at smoke size: no accuracy bound can be measured there)
    pad = log_values(d / "exp/distill/pad/seed1/train.log", "pad")
    assert len(pad) >= 2 and all(math.isfinite(v) for v in pad) and pad[-1] < 0.97 * pad[0], pad
    cos = log_values(d / "exp/distill/cosine/seed1/train.log", "loss")
    assert len(cos) >= 2 and cos[-1] < 0.9 * cos[0], cos
    assert log_values(d / "exp/distill/pad/seed1/train.log", "pad/phone")
    assert log_values(d / "exp/distill/cosine/seed1/train.log", "pad/utterance")
    assert not log_values(d / "exp/distill/cosine/seed1/train.log", "pad/word")
    accs = []
    for m, seeds in (("none", (1, 2)), ("cosine", (1,)), ("pad", (1, 2))):
        for s in seeds:
            for t in ("test", "test_unseen_para"):
                res = json.loads((d / f"exp/intent/{m}/seed{s}/decode_{t}/accuracy.json").read_text())
                refs = dict(l.split() for l in (d / f"exp/intent/{m}/seed{s}/decode_{t}/ref").read_text().splitlines())
                hyps = dict(l.split() for l in (d / f"exp/intent/{m}/seed{s}/decode_{t}/hyp").read_text().splitlines())
                data_refs = dict(l.split(maxsplit=1) for l in (d / f"data/{t}/utt2intent").read_text().splitlines())
                assert refs == data_refs and set(hyps) == set(refs) and res["n"] == len(refs)
                assert res["accuracy"] == pytest.approx(100.0 * sum(hyps[u] == r for u, r in refs.items()) / len(refs))
                accs.append(res["accuracy"])
    spec = d / "conf/results.yaml"     # stage 8 with --strict needs every method: build the table leniently
    from speechkd.asr.results import make_results

    text = make_results(spec, d / "RESULTS_smoke.md", root=d)
    row = next(l for l in text.splitlines() if l.startswith("| PAD (utt"))
    assert re.search(r"\| \d+\.\d ± \d+\.\d \(n=2\) \|", row), row
    assert "| method | mini SLU test (unseen speakers) | unseen paraphrases |" in text


@pytest.mark.parametrize("corpus", ["slurp", "fsc"])
def test_real_recipe_data_stage_on_fake_tree(tmp_path, corpus):
    import importlib

    mod = importlib.import_module(f"speechkd.corpus.{corpus}")
    tree = mod.make_fake_tree(tmp_path / "src")
    d = copy_recipe(f"{corpus}/pad", tmp_path)
    run_recipe(d, "--stage", "1", "--stop_stage", "1", f"--{corpus}_root", str(tree), timeout=300)
    intents = (d / "data/train/utt2intent").read_text().split()
    assert intents and len(intents) % 2 == 0
    assert (d / "data/train/utt2dur").exists()
    # the later stages refuse to start without their models
    with pytest.raises(AssertionError, match="speech_model is required"):
        run_recipe(d, "--stage", "2", "--stop_stage", "2", timeout=120)
    for name in ("pad.yaml", "intent.yaml", "results.yaml"):
        assert (d / "conf" / name).exists()


def test_slurp_word_spans_from_the_projects_ctc_aligner(tmp_path):
    """Stage 2 of the real PAD recipe: a char CTC aligner fine-tuned from the imported speech model, then
    each training/validation word's span from its forced alignment (data/<set>/words.ctm), in the words
    and order of the transcript."""
    from transformers import HubertConfig, HubertModel

    from speechkd.align.ctm import read_ctm
    from speechkd.corpus.slurp import make_fake_tree
    from speechkd.data.datadir import read_kv

    tree = make_fake_tree(tmp_path / "src")
    hf = tmp_path / "hubert_tiny"
    HubertModel(HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2),
                             num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)).save_pretrained(hf)
    d = copy_recipe("slurp/pad", tmp_path)
    (d / "conf/aligner_tiny.yaml").write_text(
        "model: {freeze_frontend: true, encoder: {mask_time_prob: 0.0}}\nfinetune: {freeze_encoder_steps: 0}\n"
        "data: {text_file: text, batch_seconds: 2}\noptim: {lr: 1.0e-3, warmup_steps: 1}\n"
        "train: {max_steps: 4, log_interval: 1, valid_interval: 2, save_interval: 2, keep_last: 1, "
        "progress: false, tensorboard: false}\n")
    run_recipe(d, "--stage", "1", "--stop_stage", "2", "--slurp_root", str(tree), "--speech_model", str(hf),
               "--conf_tag", "tiny", timeout=600)
    assert (d / "exp/aligner/model/model.pt").exists()
    for split in ("train", "devel"):
        texts = read_kv(d / f"data/{split}/text")
        durs = {u: float(v) for u, v in read_kv(d / f"data/{split}/utt2dur").items()}
        ctm = read_ctm(d / f"data/{split}/words.ctm")
        assert len(ctm) == len(texts), split                      # every utterance aligned
        for utt, entries in ctm.items():
            assert [e.token for e in entries] == texts[utt].split(), utt
            starts = [e.start for e in entries]
            assert starts == sorted(starts) and all(e.dur > 0 for e in entries)
            assert entries[-1].end <= durs[utt] + 0.05, utt
