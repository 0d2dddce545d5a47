"""Distillation losses against values computed by hand; masking; gradient flow."""
import math

import pytest
import torch

from speechkd.distill.losses import (DiscriminativeHead, DistillLoss, codebook_logits, cosine_loss,
                                     frontend_loss, kl_div_loss, l1_loss, lengths_to_padding_mask,
                                     regression_loss)

LOG_SIG_1 = math.log(1 + math.exp(-1))     # −log σ(1)


def test_padding_mask():
    pm = lengths_to_padding_mask(torch.tensor([2, 3]), 4)
    assert pm.tolist() == [[False, False, True, True], [False, False, False, True]]


def test_l1_by_hand_and_masking():
    pred = torch.tensor([[[1.0, 2.0], [100.0, -50.0]]])
    target = torch.zeros(1, 2, 2)
    pm = torch.tensor([[False, True]])
    assert l1_loss(pred, target, padding_mask=pm).item() == pytest.approx(1.5)
    assert l1_loss(pred, target, lengths=torch.tensor([1])).item() == pytest.approx(1.5)
    assert l1_loss(pred, target).item() == pytest.approx((1 + 2 + 100 + 50) / 4)


def test_cosine_by_hand():
    pred = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [5.0, 5.0]]])
    target = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]])
    # cos = 1, 0 (third frame padded; cos −1 would give −log σ(−1))
    got = cosine_loss(pred, target, lengths=torch.tensor([2])).item()
    assert got == pytest.approx((LOG_SIG_1 + math.log(2)) / 2, rel=1e-5)


def test_regression_loss_weights_and_logs():
    preds = [torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 3.0]]])]
    targets = [torch.tensor([[[0.0, 0.0]]]) + torch.tensor([0.0, 0.0]), torch.tensor([[[0.0, 1.0]]])]
    # layer a: L1 = 0.5, cos with zero vector = 0 → log 2; layer b: L1 = 1, cos = 1
    total, logs = regression_loss(preds, targets, l1_weight=2.0, cos_weight=0.5, layer_names=["a", "b"])
    assert logs["l1/a"] == pytest.approx(0.5) and logs["l1/b"] == pytest.approx(1.0)
    assert logs["cos/a"] == pytest.approx(math.log(2), rel=1e-5)
    assert logs["cos/b"] == pytest.approx(LOG_SIG_1, rel=1e-5)
    assert total.item() == pytest.approx(2.0 * 1.5 + 0.5 * (math.log(2) + LOG_SIG_1), rel=1e-5)


def test_codebook_logits_and_kl_by_hand():
    logits = codebook_logits(torch.tensor([[[1.0, 0.0]]]), torch.tensor([[2.0, 0.0], [0.0, 3.0]]), tau=0.5)
    assert logits.flatten().tolist() == pytest.approx([2.0, 0.0])
    t = torch.tensor([[[0.0, 0.0], [9.0, -9.0]]])
    s = torch.tensor([[[math.log(3.0), 0.0], [-9.0, 9.0]]])
    # p_t = [.5,.5], p_s = [.75,.25] → KL = .5 log(.5/.75) + .5 log(.5/.25) = .5 log(4/3)
    kl = kl_div_loss(t, s, padding_mask=torch.tensor([[False, True]]))
    assert kl.item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-5)
    assert kl_div_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)


def test_discriminative_heads_and_total():
    torch.manual_seed(0)
    codebook = torch.randn(7, 4)
    h1 = DiscriminativeHead(6, 4, 7, "type1", tau=0.1)
    h2 = DiscriminativeHead(6, 4, 7, "type2")
    x = torch.randn(2, 5, 6)
    assert h1(x, codebook).shape == (2, 5, 7) and h2(x).shape == (2, 5, 7)
    # type1 logits are bounded by 1/τ
    assert h1(x, codebook).abs().max().item() <= 10.0 + 1e-4
    loss = DistillLoss(w_rec=1.0, w_cos=0.0, w_disc=2.0, student_dim=6, final_dim=4, num_labels=7,
                       disc_kind="type1")
    preds = [torch.randn(2, 5, 3, requires_grad=True)]
    targets = [torch.randn(2, 5, 3)]
    teacher_logits = torch.randn(2, 5, 7)
    pm = lengths_to_padding_mask(torch.tensor([5, 3]), 5)
    student_last = x.clone().requires_grad_(True)
    total, logs = loss(preds, targets, pm, student_last=student_last, teacher_logits=teacher_logits,
                       codebook=codebook)
    expect = l1_loss(preds[0], targets[0], pm) + 2.0 * kl_div_loss(
        teacher_logits, loss.disc_head(student_last, codebook), pm)
    assert total.item() == pytest.approx(expect.item(), rel=1e-5)
    total.backward()
    assert student_last.grad.abs().sum() > 0 and loss.disc_head.proj.weight.grad.abs().sum() > 0
    # padded frames get no gradient
    assert student_last.grad[1, 3:].abs().sum() == 0 and preds[0].grad[1, 3:].abs().sum() == 0


def test_frontend_loss_truncates_and_masks():
    s = torch.tensor([[[1.0], [2.0], [3.0]]])
    t = torch.zeros(1, 2, 1)
    assert frontend_loss(s, t).item() == pytest.approx(1.5)
    assert frontend_loss(s, t, torch.tensor([3]), torch.tensor([1])).item() == pytest.approx(1.0)


def test_regression_gradients_skip_padding():
    p = torch.randn(2, 4, 3, requires_grad=True)
    t = torch.randn(2, 4, 3)
    total, _ = regression_loss([p], [t], lengths=torch.tensor([4, 2]))
    total.backward()
    assert p.grad[0].abs().sum() > 0 and p.grad[1, :2].abs().sum() > 0
    assert p.grad[1, 2:].abs().sum() == 0


def test_type1_head_matches_hubert_head():
    from speechkd.models.ssl import HubertHead
    torch.manual_seed(0)
    hh = HubertHead(d_model=6, final_dim=4, num_labels=9, logit_temp=0.1)
    head = DiscriminativeHead.from_hubert_head(hh, 6)
    x = torch.randn(2, 5, 6)
    teacher_logits = hh.logits(x)
    assert torch.allclose(head(x, hh.label_embs), teacher_logits, atol=1e-5)
    # an identical student has zero discriminative loss; a perturbed one has a positive loss
    assert kl_div_loss(teacher_logits, head(x, hh.label_embs)).item() == pytest.approx(0.0, abs=1e-5)
    assert kl_div_loss(teacher_logits, head(x + torch.randn_like(x), hh.label_embs)).item() > 1e-3
    fresh = DiscriminativeHead.from_hubert_head(hh, 6, copy_proj=False)   # same width, random proj
    assert not torch.equal(fresh.proj.weight, hh.final_proj.weight)
    assert kl_div_loss(teacher_logits, fresh(x, hh.label_embs)).item() > 1e-2
    thin = DiscriminativeHead.from_hubert_head(hh, 3)                      # different width: fresh proj
    assert thin(torch.randn(1, 2, 3), hh.label_embs).shape == (1, 2, 9) and thin.tau == 0.1
