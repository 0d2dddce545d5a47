"""Streaming transducer: chunk mask, streaming == full computation, search, training step, registry."""
from __future__ import annotations

import pytest
import torch

from speechkd.asr.rnnt_loss import rnnt_loss_reference
from speechkd.asr.rnnt_search import StreamingGreedyDecoder, greedy_search, modified_beam_search
from speechkd.models.transducer import TransducerModel, chunk_attention_mask, subsampled_lengths


def _model(left_chunks=2, chunk_size=4, seed=0):
    torch.manual_seed(seed)
    m = TransducerModel(12, d_model=32, n_layers=2, n_heads=4, ffn_dim=64, subsampling_channels=8,
                        chunk_size=chunk_size, left_chunks=left_chunks, pred_embed_dim=16, pred_dim=32,
                        joint_dim=32, dropout=0.0).eval()
    with torch.no_grad():                      # make a random model emit labels now and then
        m.joiner.out.bias[m.blank_id] -= 1.0
        m.joiner.out.weight.mul_(4.0)
    return m


def test_chunk_mask_by_hand():
    m = chunk_attention_mask(6, 2, 1).int()
    expected = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0],
                             [0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    assert torch.equal(m, expected)
    assert torch.equal(chunk_attention_mask(3, 2, -1).int(), torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 1]]))
    assert torch.equal(subsampled_lengths(torch.tensor([6, 7, 10, 11, 120])), torch.tensor([0, 1, 1, 2, 29]))


def test_no_future_leak():
    m = _model(left_chunks=1, chunk_size=3)
    x = torch.randn(1, 80, 80)
    enc, _ = m.encode(x)
    x2 = x.clone()
    x2[:, 4 * 6 + 3:] += 5.0        # changes encoder frames >= 6 only (frame j reads input 4j..4j+6)
    enc2, _ = m.encode(x2)
    assert torch.allclose(enc[:, :6], enc2[:, :6], atol=1e-6)     # chunks 0,1 (frames 0..5) unaffected
    assert not torch.allclose(enc[:, 6:], enc2[:, 6:])


@pytest.mark.parametrize("left_chunks,chunk_size,piece", [(2, 4, 13), (0, 3, 7), (-1, 5, 40), (1, 2, 3)])
def test_streaming_equals_full(left_chunks, chunk_size, piece):
    m = _model(left_chunks, chunk_size)
    x = torch.randn(1, 103, 80)
    enc, enc_len = m.encode(x, torch.tensor([103]))
    full = greedy_search(m, enc, enc_len, max_symbols_per_frame=3)[0]
    dec = StreamingGreedyDecoder(m, max_symbols_per_frame=3)
    for s in range(0, 103, piece):
        dec.accept(x[:, s: s + piece])
    stream = dec.finalize()
    assert dec.encoder_out.shape == enc.shape
    torch.testing.assert_close(dec.encoder_out, enc, atol=1e-5, rtol=0)
    assert len(full) > 3
    assert stream == full


def test_padded_batch_encodes_like_single():
    m = _model()
    x = torch.randn(2, 90, 80)
    enc, lens = m.encode(x, torch.tensor([90, 61]))
    single, _ = m.encode(x[1:, :61])
    assert lens.tolist() == [21, 14]
    torch.testing.assert_close(enc[1:, :14], single, atol=1e-5, rtol=0)


def test_beam1_equals_greedy_one_symbol():
    m = _model()
    enc, lens = m.encode(torch.randn(2, 100, 80), torch.tensor([100, 77]))
    assert modified_beam_search(m, enc, lens, beam=1) == greedy_search(m, enc, lens, max_symbols_per_frame=1)
    hyps = modified_beam_search(m, enc, lens, beam=4)
    assert len(hyps) == 2 and all(0 < k < 12 for h in hyps for k in h)


def test_beam1_equals_greedy_several_symbols():
    m = _model(seed=3)
    enc, lens = m.encode(torch.randn(3, 100, 80), torch.tensor([100, 77, 50]))
    for s in (2, 3):
        assert modified_beam_search(m, enc, lens, beam=1, max_symbols_per_frame=s) == \
            greedy_search(m, enc, lens, max_symbols_per_frame=s)


class _TableTransducer(torch.nn.Module):
    """A transducer whose joint log-probs come from a table ``probs[t][last token]`` (blank = 0).

    Encoder frames are one-hot frame indices and the predictor output is a one-hot of the last
    emitted token (blank at the start), so the search sees exactly the table's distributions.
    """

    def __init__(self, probs):
        super().__init__()
        self.probs = probs
        self.blank_id = 0
        self.V = len(next(iter(probs[0].values())))
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        model = self

        class Pred:
            @staticmethod
            def step(tok, state):
                return torch.nn.functional.one_hot(tok, model.V).float(), None

        class Joiner:
            enc_proj = staticmethod(lambda e: e)
            pred_proj = staticmethod(lambda o: o)

            @staticmethod
            def joint(e, p):
                t = int(e.argmax(-1))
                rows = [model.probs[t][int(last)] for last in p.argmax(-1)]
                return torch.tensor(rows).log()

        self.predictor, self.joiner = Pred(), Joiner()

    def enc(self, T):
        return torch.eye(T)[None], torch.tensor([T])


def test_beam_beats_greedy_where_the_greedy_path_is_a_trap():
    # frame 0: 'a' (0.4) is the best symbol, but after it frame 1 is flat; 'b' (0.35) is followed by a sure
    # blank. P(seq = b) = 0.35 * 0.9 + 0.25 * 0.1 = 0.34 > P(seq = a) = 0.4 * 0.34 + 0.25 * 0.1 = 0.161
    probs = [{0: [0.25, 0.4, 0.35]},
             {0: [0.8, 0.1, 0.1], 1: [0.34, 0.33, 0.33], 2: [0.9, 0.05, 0.05]}]
    m = _TableTransducer(probs)
    enc, lens = m.enc(2)
    assert greedy_search(m, enc, lens, max_symbols_per_frame=1) == [[1]]
    assert modified_beam_search(m, enc, lens, beam=1) == [[1]]
    assert modified_beam_search(m, enc, lens, beam=4) == [[2]]


def test_beam_emits_several_symbols_on_one_frame():
    # one frame that holds two symbols: a then b then blank
    probs = [{0: [0.05, 0.9, 0.05], 1: [0.05, 0.05, 0.9], 2: [0.9, 0.05, 0.05]}]
    m = _TableTransducer(probs)
    enc, lens = m.enc(1)
    assert greedy_search(m, enc, lens, max_symbols_per_frame=3) == [[1, 2]]
    assert modified_beam_search(m, enc, lens, beam=4, max_symbols_per_frame=1) == [[1]]
    assert modified_beam_search(m, enc, lens, beam=4, max_symbols_per_frame=3) == [[1, 2]]
    with pytest.raises(ValueError, match="max_symbols_per_frame"):
        modified_beam_search(m, enc, lens, beam=4, max_symbols_per_frame=0)


def test_loss_matches_reference_and_training_reduces_it():
    m = _model()
    m.train()
    x = torch.randn(2, 60, 80)
    xl = torch.tensor([60, 45])
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, -1, -1]])
    tl = torch.tensor([4, 2])
    loss = m(x, xl, tokens, tl)
    enc, el = m.encode(x, xl)
    ref = rnnt_loss_reference(m.joiner(enc, m.predictor(tokens)), tokens, el, tl)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    first = float(loss.detach())
    for _ in range(10):
        opt.zero_grad()
        loss = m(x, xl, tokens, tl)
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_registry_roundtrip(tmp_path):
    from speechkd.models.checkpoint import build_model, load_checkpoint, save_checkpoint
    m = _model()
    cfg = m.model_config()
    assert cfg["type"] == "transducer"
    m2 = build_model(cfg)
    assert sum(p.numel() for p in m2.parameters()) == sum(p.numel() for p in m.parameters())
    save_checkpoint(tmp_path / "ckpt", m, {"model": cfg})
    m3, _ = load_checkpoint(tmp_path / "ckpt")
    x = torch.randn(1, 50, 80)
    torch.testing.assert_close(m3.eval().encode(x)[0], m.encode(x)[0])


def test_pathways_on_transducer_train_and_stream():
    from speechkd.prune.magnitude import magnitude_masks
    from speechkd.prune.masks import get_weight
    from speechkd.prune.pathways import Pathways
    m = _model()
    m.train()
    en = magnitude_masks(m, 0.5, exclude=("joiner.out",))
    torch.manual_seed(1)
    de = {n: torch.rand(v.shape) < 0.5 for n, v in en.items()}
    pw = Pathways(m, {"en": en, "de": de})
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01)
    x, xl = torch.randn(1, 60, 80), torch.tensor([60])
    tokens, tl = torch.tensor([[3, 4, 5]]), torch.tensor([3])
    before = {n: get_weight(m, n).detach().clone() for n in en}
    pw.use("de")
    opt.zero_grad()
    m(x, xl, tokens, tl).backward()
    pw.step(opt)
    for n in en:
        w = get_weight(m, n).detach()
        assert torch.equal(w[~de[n]], before[n][~de[n]]), n
    m.eval()
    enc, lens = m.encode(torch.randn(1, 90, 80))
    dec = StreamingGreedyDecoder(m)
    dec.accept(torch.randn(1, 0, 80))                      # empty piece is fine
    assert isinstance(greedy_search(m, enc, lens)[0], list)


def test_joiner_chunked_loss_equals_full_logits():
    from speechkd.asr.rnnt_loss import rnnt_loss, rnnt_loss_from_joiner

    torch.manual_seed(3)
    m = _model()
    m.train()
    x = torch.randn(3, 70, 80)
    xl, tok, tl = torch.tensor([70, 52, 33]), torch.randint(1, 12, (3, 6)), torch.tensor([6, 4, 2])
    tok[2, 2:] = -1
    grads = []
    for chunk in (0, 3, 100):
        m.zero_grad()
        torch.manual_seed(0)                       # same dropout masks in both runs
        loss = m(x, xl, tok, tl, joint_frame_chunk=chunk)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}))
    for loss, g in grads[1:]:
        torch.testing.assert_close(loss, grads[0][0], rtol=1e-5, atol=1e-5)
        assert set(g) == set(grads[0][1])
        for n in g:   # fp32 summation order differs: ~3e-7 of the gradient's scale; a wrong gradient is O(1)
            ref = grads[0][1][n]
            torch.testing.assert_close(g[n], ref, rtol=1e-4, atol=1e-5 * (1 + float(ref.abs().max())), msg=n)
    # the function on its own, against rnnt_loss on the materialised logits, reduction none
    enc_p, pred_p = torch.randn(2, 9, 8, requires_grad=True), torch.randn(2, 4, 8, requires_grad=True)
    joint = torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Linear(8, 5))
    f = lambda e, p: joint(e + p)                  # noqa: E731
    t, Tl, Ul = torch.randint(1, 5, (2, 3)), torch.tensor([9, 6]), torch.tensor([3, 1])
    a = rnnt_loss_from_joiner(f, enc_p, pred_p, t, Tl, Ul, reduction="none", frame_chunk=2)
    b = rnnt_loss(f(enc_p[:, :, None], pred_p[:, None]), t, Tl, Ul, reduction="none")
    torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(a.sum(), [enc_p, pred_p])
    gb = torch.autograd.grad(b.sum(), [enc_p, pred_p])
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v)
    with pytest.raises(ValueError, match="disagree"):
        rnnt_loss_from_joiner(f, enc_p, pred_p[:, :3], t, Tl, Ul)
