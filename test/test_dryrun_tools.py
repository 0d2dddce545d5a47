"""The pieces of a real recipe's dry run: fake corpora in the published layouts and random-weight
checkpoints of the papers' architectures (speechkd-make-fake-corpus, speechkd-make-random-checkpoint)."""
from __future__ import annotations

import pytest

from speechkd.bin.make_fake_corpus import CORPORA, make_fake_corpus
from speechkd.bin.prepare_corpus import main as prepare_main
from speechkd.data.datadir import DataDir
from speechkd.models.convert.random_checkpoint import write_random_checkpoint
from speechkd.utils.errors import ConfigError


@pytest.mark.parametrize("corpus", CORPORA)
def test_fake_corpus_is_what_prepare_corpus_reads(corpus, tmp_path):
    paths = make_fake_corpus(corpus, tmp_path / "src")
    assert paths["src"].is_dir()
    args = [corpus, "--src", str(paths["src"]), "--out", str(tmp_path / "data")]
    if corpus == "librispeech":
        args += ["--finetune-src", str(paths["finetune_src"]), "--subsets", "train-clean-100,dev-clean,test-clean"]
    with pytest.raises(SystemExit) as e:
        prepare_main(args)
    assert e.value.code == 0
    dirs = [d for d in (tmp_path / "data").iterdir() if (d / "wav.scp").exists()]
    assert len(dirs) >= 2 and all(len(DataDir(d).read("wav.scp")) > 0 for d in dirs), dirs


def test_fake_commonvoice_refuses_a_language_without_sentences(tmp_path):
    with pytest.raises(ConfigError, match="no fake Common Voice sentences for xx"):
        make_fake_corpus("commonvoice", tmp_path, langs=["xx"])


def test_random_hubert_base_in_both_formats(tmp_path):
    from speechkd.bin.import_checkpoint import import_checkpoint
    from speechkd.models.checkpoint import load_checkpoint

    hf = write_random_checkpoint("hubert_base", tmp_path / "hf", fmt="hf")
    m = import_checkpoint(hf, tmp_path / "imported")            # the importer a real HF directory goes through
    assert (m.cfg.n_layers, m.cfg.d_model, m.cfg.ffn_dim) == (12, 768, 3072) and m.head is None
    assert 94e6 < sum(p.numel() for p in m.parameters()) < 95e6   # HuBERT Base's 94.4M (HF, no head)
    ours, cfg = load_checkpoint(write_random_checkpoint("hubert_base", tmp_path / "sk", fmt="speechkd"))
    assert cfg["model"]["num_labels"] == 504 and ours.head is not None  # the head L_disc reads
    assert {k: v.shape for k, v in ours.state_dict().items() if not k.startswith("head.")} == \
        {k: v.shape for k, v in m.state_dict().items()}
    with pytest.raises(ConfigError, match="unknown architecture"):
        write_random_checkpoint("hubert_huge", tmp_path / "x")


def test_random_text_teacher_loads_like_a_local_infoxlm(tmp_path, monkeypatch):
    """A random text teacher: HF masked-LM dir + a tokenizer trained on the given text, read back by the
    TextEncoder a real InfoXLM dir goes through (a tiny shape here; infoxlm_base is 12 x 768, 250,002 pieces)."""
    from speechkd.models.convert import random_checkpoint as rc
    from speechkd.models.text import TextEncoder

    assert rc.TEXT_ARCHS["infoxlm_base"]["hidden_size"] == 768
    monkeypatch.setitem(rc.TEXT_ARCHS, "tiny", dict(rc.TEXT_ARCHS["infoxlm_base"], vocab_size=300, hidden_size=32,
                                                     num_hidden_layers=2, num_attention_heads=2, intermediate_size=64))
    texts = ["guten tag wie geht es", "das ist ein kleiner test", "merhaba nasılsın bugün"] * 20
    out = rc.write_random_text_model("tiny", tmp_path / "tm", texts, vocab_size=60)
    assert (out / "config.json").exists() and (out / "spm.model").exists() and not list(out.glob("tmp*"))
    enc = TextEncoder(out, layer=-1)
    states = enc.encode(["guten tag", "das ist ein test"])
    assert [s.shape[1] for s in states] == [32, 32] and states[1].shape[0] > states[0].shape[0]
    with pytest.raises(ConfigError, match="unknown text architecture"):
        rc.write_random_text_model("gpt9", tmp_path / "x", texts)
