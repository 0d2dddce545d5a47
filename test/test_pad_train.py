"""PAD training glue: CTM units, text targets, priors, the distillation task, intent head and scoring,
and a tiny end-to-end distil → fine-tune → evaluate run on random features."""
import json
import math

import numpy as np
import pytest
import torch

from speechkd.distill import pad_train as pt
from speechkd.distill import pad_units as pu
from speechkd.train import intent as it
from speechkd.distill.pad import (PADLoss, normalise_prior, normalise_targets, target_statistics, uniform_prior,
                                 weighted_alignment_loss)
from speechkd.models.checkpoint import load_checkpoint, save_checkpoint
from speechkd.models.ssl import SSLModel
from speechkd.utils.errors import ConfigError, DataError

TINY = dict(frontend="fbank", d_model=16, n_layers=1, n_heads=2, ffn_dim=32, pos_conv_kernel=4,
            pos_conv_groups=2, final_dim=8, dropout=0.0, attention_dropout=0.0, proj_dropout=0.0,
            layerdrop=0.0, mask_time_prob=0.05, mask_time_length=2, num_labels=5)


def test_pad_reads_ctm_with_align_ctm(tmp_path):
    from speechkd.align.ctm import read_ctm

    assert pu.read_ctm is read_ctm                                   # one CTM reader
    p = tmp_path / "words.ctm"
    p.write_text("u1 1 0.00 0.20 turn\nu1 1 0.20 0.30 on\nu2 1 0.1 0.1 hi\n")
    got = {u: [(e.token, e.start, e.dur) for e in es] for u, es in pu.read_ctm(p).items()}
    assert got == {"u1": [("turn", 0.0, 0.2), ("on", 0.2, 0.3)], "u2": [("hi", 0.1, 0.1)]}
    p.write_text("u1 1 0.00 0.20 turn\nu1 1 x 0.30 on\n")
    with pytest.raises(DataError, match=r"words.ctm:2:"):
        pu.read_ctm(p)
    p.write_text("u1 1 0.00\n")
    with pytest.raises(DataError, match=r"words.ctm:1:"):
        pu.read_ctm(p)


def _ctm(rows):
    from speechkd.align.ctm import CTMEntry

    return [CTMEntry("u", start, dur, tok) for tok, start, dur in rows]


def test_text_units_and_unit_record_by_hand():
    pieces = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]])
    # word 0 = piece 0 ("▁on", 2 letters); word 1 = pieces 1, 2 ("▁l" 1 letter, "ights" 5 letters)
    tu = pu.TextUnits(pieces, [0, 1, 1], ["▁on", "▁l", "ights"], [2, 1, 5])
    assert tu.words.tolist() == [[1.0, 0.0], [4.0, 3.0]]
    assert tu.utterance.tolist() == [[3.0, 2.0]]
    words = _ctm([("on", 0.0, 0.2), ("lights", 0.2, 0.6)])
    phones = _ctm([("a", 0.0, 0.1), ("l", 0.2, 0.1), ("t", 0.5, 0.1)])
    rec = pu._unit_record("u", tu, words, phones, 40, 50.0, ["on", "lights"],
                          ["utterance", "word", "subword", "phone"])
    assert rec["spans"]["utterance"] == [(0, 40)]
    assert rec["spans"]["word"] == [(0, 10), (10, 40)]
    # word 1's 30 frames split 1:5 between its pieces
    assert rec["spans"]["subword"] == [(0, 10), (10, 15), (15, 40)]
    # phone spans (0,5) (10,15) (25,30): midpoints 2.5, 12.5, 27.5 → pieces 0, 1, 2
    assert rec["spans"]["phone"] == [(0, 5), (10, 15), (25, 30)]
    assert torch.equal(rec["text"]["phone"], pieces)
    assert torch.equal(rec["text"]["word"], tu.words)
    assert rec["labels"]["subword"] == ["▁on", "▁l", "ights"]
    assert rec["durations"]["word"] == [10.0, 30.0]
    with pytest.raises(DataError, match="differ"):
        pu._unit_record("u", tu, _ctm([("on", 0, .2), ("light", .2, .4)]), None, 40, 50.0, ["on", "lights"], ["word"])
    with pytest.raises(DataError, match="2 words"):
        pu._unit_record("u", tu, words + _ctm([("x", .6, .1)]), None, 40, 50.0, ["on", "lights", "x"], ["word"])
    # no CTM: the text model's words, spans from their letters (2 : 6 over 40 frames)
    rec = pu._unit_record("u", tu, None, None, 40, 50.0, ["on", "lights"], ["word"])
    assert rec["spans"]["word"] == [(0, 10), (10, 40)] == pu.char_spans(["on", "lights"], 40)
    rec = pu._unit_record("u", tu, None, None, 40, 50.0, ["on", "lights!", "?"], ["word"])
    assert rec["spans"]["word"] == [(0, 10), (10, 40)] and rec["labels"]["word"] == ["on", "lights"]


def test_priors_by_hand():
    table = {"a": {"labels": {"word": ["on", "lights"], "utterance": ["<utt>"]},
                   "durations": {"word": [10.0, 30.0], "utterance": [40.0]}},
             "b": {"labels": {"word": ["on", "on"], "utterance": ["<utt>"]},
                   "durations": {"word": [5.0, 5.0], "utterance": [10.0]}}}
    counts = pu.add_priors(table, {"word": "frequency", "utterance": "uniform", "alpha": 1.0, "smoothing": 0.0},
                           ["word", "utterance"])
    assert counts["word"] == {"on": 3, "lights": 1}
    # w ∝ 1/count: on 1/3, lights 1 → [0.25, 0.75]
    assert table["a"]["weights"]["word"].tolist() == pytest.approx([0.25, 0.75])
    assert table["b"]["weights"]["word"].tolist() == pytest.approx([0.5, 0.5])
    assert table["a"]["weights"]["utterance"].tolist() == [1.0]
    pu.add_priors(table, {"word": "duration", "alpha": 1.0, "smoothing": 0.0}, ["word"])
    assert table["a"]["weights"]["word"].tolist() == pytest.approx([0.25, 0.75])
    with pytest.raises(ConfigError, match="unknown prior"):
        pu.add_priors(table, {"word": "zipf", "alpha": 1.0, "smoothing": 0.0}, ["word"])


def test_pad_loss_pieces_not_covered_elsewhere():
    assert uniform_prior(4).tolist() == [0.25] * 4
    assert normalise_prior(torch.zeros(2)).tolist() == [0.5, 0.5]
    # weighted InfoNCE, τ = 1, y = x = I: every unit CE = log(1 + e^-1) whatever the weights
    x = [torch.eye(2)]
    got = weighted_alignment_loss(x, x, [torch.tensor([3.0, 1.0])], "infonce", temperature=1.0).item()
    assert got == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-5)
    with pytest.raises(ValueError, match="units"):
        weighted_alignment_loss([torch.zeros(2, 2)], [torch.zeros(3, 2)], None, "mse")
    with pytest.raises(ValueError):
        PADLoss(2, 2, ("word",), combine="softmax")
    with pytest.raises(ValueError):
        PADLoss(2, 2, ("word", "phone"), combine="fixed", fixed_weights=[1.0])


def _table_for(lengths, dim_text=6):
    g = torch.Generator().manual_seed(0)
    table = {}
    for i, T in enumerate(lengths):
        n = T // 2
        table[f"u{i}"] = {"spans": {"utterance": [(0, n)], "word": [(0, n // 2), (n // 2, n)]},
                          "text": {"utterance": torch.randn(1, dim_text, generator=g),
                                   "word": torch.randn(2, dim_text, generator=g)},
                          "weights": {"utterance": torch.ones(1), "word": torch.tensor([0.3, 0.7])}}
    return table


def _best_constant_cosine_loss(targets):
    """1 - mean cos of the best constant prediction (the sum of the targets' unit vectors)."""
    z = torch.nn.functional.normalize(targets, dim=-1)
    c = z.sum(0, keepdim=True)
    return float((1 - torch.nn.functional.cosine_similarity(c.expand_as(targets), targets, dim=-1)).mean())


def test_normalised_targets_leave_no_constant_optimum():
    # nearly collinear targets, as the mini text model's utterance states (mean pairwise cosine 0.85)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(16, generator=g) * 3
    t = base + torch.randn(300, 16, generator=g)
    assert _best_constant_cosine_loss(t) < 0.1            # one constant output is near the cosine optimum
    mean, std = target_statistics([t[:100], t[100:]])
    torch.testing.assert_close(mean, t.mean(0))
    for mode in ("center", "standardize"):
        z = normalise_targets(t, mean, std, mode)
        assert _best_constant_cosine_loss(z) > 0.8, mode   # around the mean a constant output scores ~0
    torch.testing.assert_close(normalise_targets(t, mean, std, "standardize").std(0, unbiased=False),
                               torch.ones(16), atol=1e-4, rtol=0)
    assert normalise_targets(t, mean, std, "none") is t
    with pytest.raises(ValueError, match="normalisation"):
        normalise_targets(t, mean, std, "whiten")


def test_unit_tables_normalised_with_the_training_statistics():
    train, valid = _table_for([40, 30, 20]), _table_for([30])
    raw_train = {u: {g: r["text"][g].clone() for g in r["text"]} for u, r in train.items()}
    raw_valid = valid["u0"]["text"]["word"].clone()
    summary = pu.normalise_unit_tables(train, [valid], ["utterance", "word"], "center")
    assert set(summary) == {"utterance", "word"} and -1.0 <= summary["word"]["cos_after"] <= 1.0
    word_mean = torch.cat([raw_train[u]["word"] for u in raw_train]).mean(0)
    torch.testing.assert_close(valid["u0"]["text"]["word"], raw_valid - word_mean)   # train mean, not valid's
    torch.testing.assert_close(torch.cat([r["text"]["word"] for r in train.values()]).mean(0),
                               torch.zeros(6), atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="target_norm"):
        pu.normalise_unit_tables(train, [], ["word"], "whiten")


def test_pad_task_forward_backward():
    torch.manual_seed(0)
    model = SSLModel(dict(TINY))
    loss_fn = PADLoss(16, 6, ("utterance", "word"), metric="cosine", combine="uncertainty")
    task = pt.PADTask(model, loss_fn, _table_for([40, 30]))
    batch = {"x": torch.randn(2, 40, 80), "x_lengths": torch.tensor([40, 30]), "utts": ["u0", "u1"]}
    loss, logs = task(batch)
    assert torch.isfinite(loss) and set(logs) >= {"pad", "pad/utterance", "pad/word", "w/word"}
    assert logs["pad"] == pytest.approx(logs["pad/utterance"] + logs["pad/word"], rel=1e-5)   # σ = 0
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("encoder.")]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert loss_fn.log_vars.grad is not None


def test_intent_score_and_labelled_subset(tmp_path):
    st = it.intent_score({"a": "x", "b": "y", "c": "y"}, {"a": "x", "b": "x", "c": "y"})
    assert st == {"snt": 3, "wrd": 3, "corr": 2, "sub": 1, "dele": 0, "ins": 0, "serr": 1}
    with pytest.raises(ConfigError):
        it.intent_score({"a": "x"}, {})
    (tmp_path / "utt2intent").write_text("".join(f"u{i:02d} {'ab'[i % 2]}\n" for i in range(10)))
    s1 = it.select_labelled(tmp_path, 2, seed=1)
    assert len(s1) == 4 and s1 == sorted(s1) and s1 == it.select_labelled(tmp_path, 2, seed=1)
    labels = [int(u[1:]) % 2 for u in s1]
    assert labels.count(0) == 2 and labels.count(1) == 2
    assert len(it.select_labelled(tmp_path, 9, seed=1)) == 10


# ------------------------------------------------------------------------------------ end to end
def _fake_datadir(d, n, rng, sentences):
    import kaldiio

    d.mkdir(parents=True)
    lines = {k: [] for k in ("text", "utt2intent", "utt2spk", "utt2num_frames", "words.ctm", "phones.ctm")}
    with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
        for i in range(n):
            utt = f"s{i % 2}_{i:03d}"
            sent, intent = sentences[i % len(sentences)]
            words = sent.split()
            T = 20 * len(words) + 10
            feats = rng.standard_normal((T, 80)).astype(np.float32) + (i % len(sentences))
            w(utt, feats)
            lines["text"].append(f"{utt} {sent}")
            lines["utt2intent"].append(f"{utt} {intent}")
            lines["utt2spk"].append(f"{utt} s{i % 2}")
            lines["utt2num_frames"].append(f"{utt} {T}")
            for k, word in enumerate(words):
                lines["words.ctm"].append(f"{utt} 1 {0.05 + 0.2 * k:.2f} 0.20 {word}")
                lines["phones.ctm"] += [f"{utt} 1 {0.05 + 0.2 * k:.2f} 0.10 p{k}",
                                        f"{utt} 1 {0.15 + 0.2 * k:.2f} 0.10 q"]
    for name, ls in lines.items():
        (d / name).write_text("".join(l + "\n" for l in sorted(ls)))
    spk2utt = {}
    for l in lines["utt2spk"]:
        u, s = l.split()
        spk2utt.setdefault(s, []).append(u)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(sorted(us))}\n" for s, us in sorted(spk2utt.items())))


def test_distil_finetune_evaluate_tiny(tmp_path):
    from speechkd.models.text import train_mini_mlm

    rng = np.random.default_rng(0)
    sents = [("turn on the lights", "activate_lights_none"), ("switch the lights off", "deactivate_lights_none"),
             ("play some music", "activate_music_none")]
    _fake_datadir(tmp_path / "train", 12, rng, sents)
    _fake_datadir(tmp_path / "test", 6, rng, sents)
    train_mini_mlm([s for s, _ in sents] * 4, tmp_path / "text_lm", vocab_size=40, n_layers=1, d_model=16,
                   n_heads=2, ffn_dim=32, steps=2, batch_size=4, progress=False)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "teacher", SSLModel(dict(TINY)), {"model": SSLModel(dict(TINY)).model_config()})
    teacher_state = {k: v.clone() for k, v in load_checkpoint(tmp_path / "teacher")[0].state_dict().items()}
    small = {"data": {"batch_seconds": 2.0}, "optim": {"lr": 1e-2, "warmup_steps": 1},
             "train": {"max_steps": 4, "progress": False, "tensorboard": False, "log_interval": 1}}
    cfg = pt.merge(small, {"pad": {"granularities": ["utterance", "word", "subword", "phone"], "metric": "infonce"}})
    out = pt.distill_pad(cfg, tmp_path / "train", tmp_path / "teacher", tmp_path / "text_lm", tmp_path / "pad",
                         valid_data=tmp_path / "test")
    student, scfg = load_checkpoint(out)
    assert isinstance(student, SSLModel) and scfg["model"]["type"] == "ssl"      # no structural change
    assert set(student.state_dict()) == set(teacher_state)
    changed = [k for k, v in student.state_dict().items() if not torch.equal(v, teacher_state[k])]
    assert changed and not any(k.startswith("feature_extractor.") for k in changed)   # front-end frozen
    valid = json.loads((tmp_path / "pad" / "valid.json").read_text())
    assert all(math.isfinite(valid[f"pad/{g}"]) for g in ("utterance", "word", "subword", "phone"))
    # words.ctm disagreeing with the transcript is caught, naming the text file
    (tmp_path / "train" / "text").write_text((tmp_path / "train" / "text").read_text().replace("music", "songs"))
    with pytest.raises(DataError, match="text"):
        pt.distill_pad(cfg, tmp_path / "train", tmp_path / "teacher", tmp_path / "text_lm", tmp_path / "pad2")

    icfg = pt.merge(small, {"model": {"hidden_dim": 8}, "finetune": {"freeze_encoder": True},
                            "train": {"max_steps": 6}})
    mdir = it.finetune_intent(icfg, tmp_path / "train", out, tmp_path / "intent",
                              intents=[i for _, i in sents] + ["bring_shoes_none"])
    model, mcfg = load_checkpoint(mdir)
    assert mcfg["model"]["type"] == "intent" and len(model.intents) == 4
    enc = {k: v for k, v in student.state_dict().items() if not k.startswith("head.")}
    assert all(torch.equal(model.encoder.state_dict()[k], v) for k, v in enc.items())   # encoder frozen
    res = it.evaluate_intent(mdir, tmp_path / "test", tmp_path / "intent" / "decode_test")
    assert res["n"] == 6 and 0.0 <= res["accuracy"] <= 100.0
    hyps = dict(line.split() for line in (tmp_path / "intent" / "decode_test" / "hyp").read_text().splitlines())
    assert res["distinct_predictions"] == len(set(hyps.values())) and res["distinct_references"] == 3
    score = json.loads((tmp_path / "intent" / "decode_test" / "score.json").read_text())
    assert score["units"]["intent"]["Corr"] == pytest.approx(res["accuracy"], abs=1e-3)
    hyp = (tmp_path / "intent" / "decode_test" / "hyp").read_text().split("\n")
    assert len([h for h in hyp if h]) == 6 and all(h.split()[1] in model.intents for h in hyp if h)
