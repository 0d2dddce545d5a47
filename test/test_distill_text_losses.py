"""Distill-L2S and PAD losses against hand-computed values."""
import math

import pytest
import torch

from speechkd.distill.l2s import L2SLoss, interpolate_linear, interpolate_nearest, shrink
from speechkd.distill.pad import (PADLoss, duration_prior, frame_spans_from_ctm, frequency_prior,
                                  mean_pool, pool_spans, pool_word_pieces, unit_counts,
                                  weighted_alignment_loss)


def _one_hot_logp(ids, V=6):
    return torch.nn.functional.one_hot(torch.tensor(ids), V).float().log_softmax(-1)


def test_shrink_by_hand():
    hidden = torch.arange(8.0).view(1, 8, 1).repeat(2, 1, 1)
    lp = torch.stack([_one_hot_logp([0, 3, 3, 0, 5, 5, 5, 3]), _one_hot_logp([3, 0, 3, 3, 0, 0, 9 % 6, 0])])
    out, lens = shrink(hidden, lp, torch.tensor([8, 4]))
    assert lens.tolist() == [3, 2]
    assert out[0, :, 0].tolist() == pytest.approx([1.5, 5.0, 7.0])
    assert out[1, :2, 0].tolist() == pytest.approx([0.0, 2.5])        # frames 4..7 are padding
    assert out[1, 2:].abs().sum() == 0


def test_shrink_all_blank_gives_empty():
    out = shrink(torch.randn(1, 3, 2), _one_hot_logp([0, 0, 0])[None], return_list=True)
    assert out[0].shape == (0, 2)


def test_interpolation_by_hand():
    x = torch.tensor([[[1.0], [2.0], [3.0]], [[10.0], [20.0], [0.0]]])
    near = interpolate_nearest(x, torch.tensor([3, 2]), torch.tensor([2, 4]))
    assert near.shape == (2, 4, 1)
    assert near[0, :2, 0].tolist() == [1.0, 2.0] and near[0, 2:].abs().sum() == 0
    assert near[1, :, 0].tolist() == [10.0, 10.0, 20.0, 20.0]
    lin = interpolate_linear(x, torch.tensor([2, 2]), torch.tensor([3, 1]))
    assert lin[0, :, 0].tolist() == pytest.approx([1.0, 1.5, 2.0])


def test_l2s_loss_by_hand_and_gradients():
    loss_fn = L2SLoss(1, 1)
    with torch.no_grad():
        loss_fn.proj.weight.fill_(2.0)
        loss_fn.proj.bias.zero_()
    hidden = torch.tensor([[[1.0], [1.0], [3.0], [0.0]]], requires_grad=True)
    lp = _one_hot_logp([4, 4, 2, 0])[None]
    text = torch.tensor([[[0.0], [5.0]]])
    # shrunk: [1, 3] → projected [2, 6]; text nearest to 2 positions: [0, 5]; MSE = (4 + 1)/2
    loss = loss_fn(hidden, lp, torch.tensor([4]), text, torch.tensor([2]))
    assert loss.item() == pytest.approx(2.5)
    loss.backward()
    assert hidden.grad[0, :3].abs().sum() > 0 and hidden.grad[0, 3].abs().sum() == 0
    assert loss_fn.proj.weight.grad is not None


def test_l2s_loss_empty_utterances():
    loss_fn = L2SLoss(2, 3)
    h = torch.randn(2, 3, 2, requires_grad=True)
    lp = torch.stack([_one_hot_logp([0, 0, 0]), _one_hot_logp([0, 0, 0])])
    loss = loss_fn(h, lp, torch.tensor([3, 3]), torch.randn(2, 2, 3), torch.tensor([2, 2]))
    assert loss.item() == 0.0
    loss.backward()                                    # no crash
    # one empty utterance among two: the other alone decides the loss
    lp2 = torch.stack([_one_hot_logp([1, 1, 0]), _one_hot_logp([0, 0, 0])])
    text = torch.randn(2, 2, 3)
    got = loss_fn(h, lp2, torch.tensor([3, 3]), text, torch.tensor([2, 2]))
    pred = loss_fn.proj(h[0, :2].mean(0))
    assert got.item() == pytest.approx(((pred - text[0, 0]) ** 2).mean().item(), rel=1e-5)


def test_pad_unit_extraction():
    assert frame_spans_from_ctm([(0.0, 0.1), (0.1, 0.04), (0.3, 0.001)], 50) == [(0, 5), (5, 7), (15, 16)]
    assert frame_spans_from_ctm([(0.5, 1.0)], 50, num_frames=30) == [(25, 30)]
    h = torch.arange(6.0).view(6, 1)
    assert pool_spans(h, [(0, 2), (2, 6)])[:, 0].tolist() == [0.5, 3.5]
    tok = torch.tensor([[1.0], [3.0], [5.0], [7.0], [100.0]])
    assert pool_word_pieces(tok, [None, 0, 0, 1, None])[:, 0].tolist() == [4.0, 7.0]
    pm = torch.tensor([[False, False, True]])
    assert mean_pool(torch.tensor([[[1.0], [3.0], [50.0]]]), pm)[0, 0].item() == 2.0


def test_pad_priors_by_hand():
    counts = unit_counts([["a", "b"], ["b", "b"]])
    assert counts == {"a": 1, "b": 3}
    assert frequency_prior(["a", "b"], counts, smoothing=0.0).tolist() == pytest.approx([0.75, 0.25])
    assert duration_prior([1.0, 3.0]).tolist() == pytest.approx([0.25, 0.75])
    assert frequency_prior(["a", "b", "b"], counts, smoothing=0.0).sum().item() == pytest.approx(1.0)


def test_pad_metrics_by_hand():
    s = [torch.tensor([[0.0, 0.0], [2.0, 2.0]]), torch.zeros(0, 2)]
    t = [torch.zeros(2, 2), torch.zeros(0, 2)]
    w = [torch.tensor([3.0, 1.0]), torch.zeros(0)]
    # distances [0, 4], weights [.75, .25] → 1.0; the empty utterance is skipped
    assert weighted_alignment_loss(s, t, w, "mse").item() == pytest.approx(1.0)
    assert weighted_alignment_loss(s, t, None, "mse").item() == pytest.approx(2.0)
    x = [torch.tensor([[1.0, 0.0], [0.0, 1.0]])]
    y = [torch.tensor([[2.0, 0.0], [1.0, 1.0]])]
    # cos = 1 and 1/√2 → mean(0, 1 − 1/√2)
    assert weighted_alignment_loss(x, y, None, "cosine").item() == pytest.approx((1 - 2 ** -0.5) / 2)
    # InfoNCE with τ = 1, y = x: logits = I → each CE = log(1 + e^−1)
    got = weighted_alignment_loss(x, x, None, "infonce", temperature=1.0).item()
    assert got == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-5)


def test_pad_loss_combination_and_gradients():
    torch.manual_seed(0)
    speech = {"utterance": [torch.randn(1, 3, requires_grad=True) for _ in range(2)],
              "word": [torch.randn(2, 3, requires_grad=True), torch.randn(3, 3, requires_grad=True)]}
    text = {"utterance": [torch.randn(1, 4) for _ in range(2)],
            "word": [torch.randn(2, 4), torch.randn(3, 4)]}
    fixed = PADLoss(3, 4, ("utterance", "word"), metric="mse", combine="fixed", fixed_weights=[0.3, 2.0])
    total, logs = fixed(speech, text)
    assert total.item() == pytest.approx(0.3 * logs["pad/utterance"] + 2.0 * logs["pad/word"], rel=1e-5)
    unc = PADLoss(3, 4, ("utterance", "word"), metric="cosine", combine="uncertainty")
    total, logs = unc(speech, text)
    assert total.item() == pytest.approx(logs["pad/utterance"] + logs["pad/word"], rel=1e-5)   # σ = 0
    total.backward()
    # dL/dσ_g = −L_g + 1 at σ = 0
    expect = [1 - logs["pad/utterance"], 1 - logs["pad/word"]]
    assert unc.log_vars.grad.tolist() == pytest.approx(expect, rel=1e-4)
    assert speech["word"][1].grad.abs().sum() > 0 and unc.heads["word"].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        PADLoss(3, 4, metric="l3")


def test_pad_subword_spans_and_batch_units():
    from speechkd.distill.pad import split_span, units_from_spans
    assert split_span((10, 20), [1, 4]) == [(10, 12), (12, 20)]
    assert split_span((0, 2), [3, 3, 3]) == [(0, 1), (1, 2), (1, 2)]       # fewer frames than pieces
    h = torch.arange(10.0).view(2, 5, 1)
    units = units_from_spans(h, torch.tensor([5, 3]), [[(0, 2), (2, 5)], [(1, 3), (2, 9)]])
    assert units[0][:, 0].tolist() == [0.5, 3.0]
    assert units[1][:, 0].tolist() == [6.5, 7.0]                            # second span clipped to frame 2
