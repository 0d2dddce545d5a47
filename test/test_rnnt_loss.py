"""RNN-T loss: vectorised anti-diagonal version vs brute-force alignment enumeration and a plain DP."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from speechkd.asr.rnnt_loss import gather_log_probs, rnnt_loss, rnnt_loss_reference


def brute_force_loss(logits, targets, logit_lengths, target_lengths, blank=0):
    """-log of the sum over every alignment (all orderings of T blanks and U labels ending in blank)."""
    lp_all = torch.log_softmax(logits.double(), dim=-1)
    out = []
    for b in range(logits.shape[0]):
        T, U = int(logit_lengths[b]), int(target_lengths[b])
        y = targets[b, :U].tolist()
        total = []
        # choose which of the first T-1+U emissions are labels; the last emission is always blank
        for label_pos in itertools.combinations(range(T - 1 + U), U):
            t = u = 0
            score = 0.0
            for k in range(T - 1 + U):
                if k in label_pos:
                    score += float(lp_all[b, t, u, y[u]])
                    u += 1
                else:
                    score += float(lp_all[b, t, u, blank])
                    t += 1
            score += float(lp_all[b, t, u, blank])
            assert t == T - 1 and u == U
            total.append(score)
        m = max(total)
        out.append(-(m + math.log(sum(math.exp(s - m) for s in total))))
    return torch.tensor(out, dtype=torch.float64)


def _random_case(seed, B, T, U, V, blank=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, U + 1, V, generator=g, dtype=torch.float64) * 2
    targets = torch.randint(1, V, (B, U), generator=g)
    T_b = torch.randint(1, T + 1, (B,), generator=g)
    T_b[0] = T
    U_b = torch.randint(0, U + 1, (B,), generator=g)
    U_b[0] = U
    for b in range(B):
        targets[b, U_b[b]:] = -1                      # padding as written by the collate
    return logits, targets, T_b, U_b


def test_hand_computed_2x2():
    # T=2, U=1, V=2 (blank=0, label 1). p(blank) per node (t,u): (0,0)=.6 (0,1)=.7 (1,0)=.5 (1,1)=.8
    # alignments: y,∅,∅ -> .4*.7*.8 = .224 ; ∅,y,∅ -> .6*.5*.8 = .240 ; total .464
    pb = torch.tensor([[0.6, 0.7], [0.5, 0.8]], dtype=torch.float64)
    lp = torch.stack([pb.log(), (1 - pb).log()], dim=-1)[None]   # (1, 2, 2, 2)
    args = (lp, torch.tensor([[1]]), torch.tensor([2]), torch.tensor([1]))
    expected = -math.log(0.464)
    assert rnnt_loss(*args, log_probs_input=True).item() == pytest.approx(expected, abs=1e-12)
    assert rnnt_loss(*args, log_probs_input=False).item() == pytest.approx(expected, abs=1e-12)  # lp are normalised
    assert rnnt_loss_reference(*args, log_probs_input=True).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed,B,T,U,V", [(0, 1, 1, 0, 3), (1, 1, 3, 2, 4), (2, 3, 4, 3, 5),
                                          (3, 4, 5, 2, 3), (4, 2, 2, 4, 6), (5, 5, 6, 3, 4)])
def test_matches_brute_force(seed, B, T, U, V):
    logits, targets, T_b, U_b = _random_case(seed, B, T, U, V)
    expected = brute_force_loss(logits, targets, T_b, U_b)
    got = rnnt_loss(logits, targets, T_b, U_b, reduction="none")
    ref = rnnt_loss_reference(logits, targets, T_b, U_b, reduction="none")
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ref, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(rnnt_loss(logits, targets, T_b, U_b, reduction="sum"), expected.sum())
    torch.testing.assert_close(rnnt_loss(logits, targets, T_b, U_b), expected.mean())


def test_nonzero_blank_id_and_float32():
    logits, targets, T_b, U_b = _random_case(7, 3, 5, 3, 5)
    targets = targets.where(targets != 2, torch.full_like(targets, 1))    # labels never equal blank=2
    targets[targets < 0] = -1
    got = rnnt_loss(logits.float(), targets, T_b, U_b, blank=2, reduction="none")
    ref = rnnt_loss_reference(logits, targets, T_b, U_b, blank=2, reduction="none")
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)
    assert got.dtype == torch.float32


def test_gradients_match_autograd_reference():
    logits, targets, T_b, U_b = _random_case(11, 3, 6, 4, 5)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    rnnt_loss(a, targets, T_b, U_b, batch_chunk=2).backward()
    rnnt_loss_reference(b, targets, T_b, U_b).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)
    # padded frames / padded label positions get exactly zero gradient
    pad_frames = torch.arange(6)[None, :] >= T_b[:, None]                  # (B, T)
    assert pad_frames.any()
    assert a.grad[pad_frames].abs().max() == 0
    assert a.grad[~pad_frames].abs().max() > 0


def test_gradcheck_float64():
    logits, targets, T_b, U_b = _random_case(3, 2, 3, 2, 4)
    x = logits.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda z: rnnt_loss(z, targets, T_b, U_b, reduction="sum"), (x,))
    assert torch.autograd.gradcheck(
        lambda z: rnnt_loss(z, targets, T_b, U_b, reduction="none", batch_chunk=1), (x,))
    lp = torch.log_softmax(logits, -1).clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda z: rnnt_loss(z, targets, T_b, U_b, log_probs_input=True), (lp,))


def test_half_logits_accumulate_in_fp32():
    logits, targets, T_b, U_b = _random_case(5, 2, 8, 4, 7)
    h = logits.half().requires_grad_()
    loss = rnnt_loss(h, targets, T_b, U_b, reduction="none")
    assert loss.dtype == torch.float32
    ref = rnnt_loss_reference(h.detach().double(), targets, T_b, U_b, reduction="none")
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-5)
    loss.sum().backward()
    assert h.grad.dtype == torch.float16 and torch.isfinite(h.grad).all()


def test_batch_chunk_gives_same_values():
    logits, targets, T_b, U_b = _random_case(9, 5, 4, 3, 6)
    blank_a, label_a = gather_log_probs(logits, targets, 0, batch_chunk=None)
    blank_b, label_b = gather_log_probs(logits, targets, 0, batch_chunk=2)
    torch.testing.assert_close(blank_a, blank_b)
    torch.testing.assert_close(label_a, label_b)
    lp = torch.log_softmax(logits, -1)
    torch.testing.assert_close(blank_a, lp[..., 0])


def test_bad_lengths_raise():
    logits = torch.randn(1, 3, 3, 4)
    with pytest.raises(ValueError):
        rnnt_loss(logits, torch.ones(1, 2, dtype=torch.long), torch.tensor([4]), torch.tensor([2]))
    with pytest.raises(ValueError):
        rnnt_loss(logits, torch.ones(1, 3, dtype=torch.long), torch.tensor([3]), torch.tensor([2]))
