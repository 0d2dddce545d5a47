"""Mini text teacher: trains (loss falls), saves in HF format, reloads offline identically."""
import pytest
import torch

from speechkd.models.text import (SPECIALS, TextEncoder, mask_tokens, read_text_file, train_mini_mlm)
from speechkd.utils.errors import DataError

WORDS = ("the cat sat on a mat while dogs ran far away from big red houses near green trees "
         "under blue skies and small birds sang songs every morning").split()


def _corpus(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(4, 10, (1,), generator=g))
        start = int(torch.randint(0, len(WORDS) - k, (1,), generator=g))
        out.append(" ".join(WORDS[start:start + k]))       # contiguous spans: predictable by an MLM
    return out


def test_mask_tokens_rules():
    ids = torch.arange(10, 30).view(2, 10)
    special = torch.zeros(2, 10, dtype=torch.bool)
    special[:, 0] = True
    inputs, labels = mask_tokens(ids, special, mask_id=4, vocab_size=40, mask_prob=1.0,
                                 generator=torch.Generator().manual_seed(0))
    assert (labels[:, 0] == -100).all() and torch.equal(labels[:, 1:], ids[:, 1:])
    assert torch.equal(inputs[:, 0], ids[:, 0])
    assert (inputs[:, 1:] == 4).float().mean() > 0.5            # ~80 % replaced by <mask>


def test_mini_mlm_trains_saves_reloads(tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    texts = _corpus()
    res = train_mini_mlm(texts, tmp_path / "tt", vocab_size=120, n_layers=2, d_model=32, n_heads=2,
                         ffn_dim=64, steps=80, batch_size=16, lr=3e-3, progress=False)
    losses = res["losses"]
    assert sum(losses[-10:]) / 10 < sum(losses[:5]) / 5 - 0.3
    out = tmp_path / "tt"
    assert {"config.json", "tokenizer.json", "spm.model", "model.safetensors"} <= {p.name for p in out.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]      # temp dir renamed away

    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    assert tok.convert_ids_to_tokens(list(range(5))) == list(SPECIALS)
    sent = "the cat sat on a mat"
    ids = tok(sent, return_tensors="pt")
    assert torch.equal(ids["input_ids"], res["tokenizer"](sent, return_tensors="pt")["input_ids"])
    reloaded = AutoModelForMaskedLM.from_pretrained(str(out), local_files_only=True).eval()
    with torch.no_grad():
        a = res["model"](**ids, output_hidden_states=True).hidden_states
        b = reloaded(**ids, output_hidden_states=True).hidden_states
    assert len(a) == 3 and all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b))

    enc = TextEncoder(out, layer=-1)
    assert enc.dim == 32 and not any(p.requires_grad for p in enc.model.parameters())
    states = enc.encode([sent, "dogs ran"])
    n_pieces = len(tok.tokenize(sent))
    assert states[0].shape == (n_pieces, 32)
    assert torch.allclose(states[0], a[-1][0, 1:-1], atol=1e-5)          # <s>, </s> dropped
    assert states[1].shape == (len(tok.tokenize("dogs ran")), 32)        # padding removed
    words = enc.encode_words([sent, "dogs ran"])
    assert [w.shape[0] for w in words] == [6, 2]
    word_ids = tok(sent).word_ids()
    first = [i for i, w in enumerate(word_ids) if w == 0]
    assert torch.allclose(words[0][0], a[-1][0, first].mean(0), atol=1e-5)


def test_read_text_file(tmp_path):
    p = tmp_path / "text"
    p.write_text("u1 hello world\nu2 good day\n")
    assert read_text_file(p) == ["hello world", "good day"]
    p.write_text("u1 hello\nu2\n")
    with pytest.raises(DataError, match=":2:"):
        read_text_file(p)


def test_random_text_model_like_keeps_architecture_and_tokenizer(tmp_path):
    """The control teacher of distill_l2s: same config and tokenizer, new weights, loadable by TextEncoder."""
    import json

    from speechkd.bin.train_text_model import main as cli
    from speechkd.models.text import random_text_model_like

    train_mini_mlm(_corpus(100), tmp_path / "tt", vocab_size=80, n_layers=1, d_model=16, n_heads=2,
                   ffn_dim=32, steps=20, batch_size=8, progress=False)
    out = random_text_model_like(tmp_path / "tt", tmp_path / "rand", seed=1)
    cfg_a, cfg_b = (json.loads((d / "config.json").read_text()) for d in (tmp_path / "tt", out))
    keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    assert all(cfg_a[k] == cfg_b[k] for k in keys)
    a, b = TextEncoder(tmp_path / "tt"), TextEncoder(out)
    sent = "the cat sat on a mat"
    assert a.tokenizer.tokenize(sent) == b.tokenizer.tokenize(sent)                 # same pieces
    sa, sb = a.encode([sent])[0], b.encode([sent])[0]
    assert sa.shape == sb.shape and not torch.allclose(sa, sb, atol=1e-2)          # other weights
    assert torch.equal(TextEncoder(random_text_model_like(tmp_path / "tt", tmp_path / "r2", seed=1))
                       .encode([sent])[0], sb)                                      # seeded
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(SystemExit) as e:       # trains nothing: a --text with it is an error, not ignored
        cli(["--random-like", str(tmp_path / "tt"), "--out", str(tmp_path / "r3"), "--text", "x"])
    assert e.value.code != 0 and not (tmp_path / "r3").exists()
