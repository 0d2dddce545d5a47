"""Masks, magnitude pruning and language pathways."""
from __future__ import annotations

import torch
from torch import nn

from speechkd.prune.magnitude import iterative_magnitude_pruning, magnitude_masks, sparsity_schedule
from speechkd.prune.masks import (apply_masks, get_masks, get_weight, prunable_names, remove_masks,
                                  sparsity_report)
from speechkd.prune.pathways import (Pathways, export_sparse, learn_pathway_masks, load_pathway_masks,
                                     mask_iou, overlap_matrix, save_pathway_masks)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(6, 16)
        self.lstm = nn.LSTM(16, 8, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h, _ = self.lstm(torch.tanh(self.inp(x)))
        return self.out(self.norm(h))


def _model(seed=0):
    torch.manual_seed(seed)
    return Tiny()


def _loss(model, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 5, 6, generator=g)
    y = torch.randint(0, 3, (4, 5), generator=g)
    return nn.functional.cross_entropy(model(x).reshape(-1, 3), y.reshape(-1))


def test_prunable_names_and_exact_sparsity():
    m = _model()
    names = prunable_names(m)
    assert names == ["inp.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "out.weight"]
    total = 16 * 6 + 32 * 16 + 32 * 8 + 3 * 8
    for s in (0.0, 0.3, 0.5, 0.77, 1.0):
        masks = magnitude_masks(m, s, scope="global")
        assert sum(int((~v).sum()) for v in masks.values()) == round(s * total)
        per = magnitude_masks(m, s, scope="layer")
        for n, v in per.items():
            assert int((~v).sum()) == round(s * v.numel())
    # global keeps the largest magnitudes: every kept |w| >= every pruned |w|
    masks = magnitude_masks(m, 0.6)
    kept = torch.cat([get_weight(m, n).abs()[v] for n, v in masks.items()])
    pruned = torch.cat([get_weight(m, n).abs()[~v] for n, v in masks.items()])
    assert kept.min() >= pruned.max()


def test_exact_count_with_ties():
    m = _model()
    with torch.no_grad():
        m.inp.weight.zero_()           # 96 tied zeros
    masks = magnitude_masks(m, 0.5, scope="layer", names=["inp.weight"])
    assert int((~masks["inp.weight"]).sum()) == 48


def test_masks_apply_report_and_stay_zero_under_adamw():
    m = _model()
    masks = magnitude_masks(m, 0.5)
    apply_masks(m, masks)
    rep = sparsity_report(m)
    assert rep["global"]["sparsity"] == 0.5 and rep["global"]["total"] == 16 * 6 + 32 * 16 + 32 * 8 + 24
    for n, v in get_masks(m).items():
        assert torch.equal(v, masks[n])
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    before = _loss(m, 0).item()
    for i in range(20):
        opt.zero_grad()
        _loss(m, 0).backward()
        opt.step()
    assert _loss(m, 0).item() < before
    for n, v in masks.items():
        mod, attr = n.rsplit(".", 1)
        eff = getattr(m.get_submodule(mod), attr)
        assert (eff[~v] == 0).all() and (eff[v] != 0).all()
        assert (get_weight(m, n).grad[~v] == 0).all()
    baked = remove_masks(m, bake=True)
    assert sparsity_report(baked)["global"]["sparsity"] == 0.5
    assert not any("parametrizations" in k for k in baked.state_dict())


def test_iterative_schedule_reaches_target_with_nested_masks():
    sched = sparsity_schedule(0.8, 3)
    assert len(sched) == 3 and sched[-1] == 0.8
    assert abs((1 - sched[0]) ** 3 - 0.2) < 1e-12                    # same fraction of the rest each round
    assert [round(v, 12) for v in sparsity_schedule(0.6, 3, "linear")] == [0.2, 0.4, 0.6]
    m = _model()
    seen = []

    def train(model, r):
        seen.append(sparsity_report(model)["global"]["sparsity"])
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            _loss(model, r).backward()
            opt.step()

    masks = iterative_magnitude_pruning(m, 0.8, 3, train, scope="global")
    total = sum(v.numel() for v in masks.values())
    assert sum(int((~v).sum()) for v in masks.values()) == round(0.8 * total)
    assert all(abs(a - b) <= 1.0 / total for a, b in zip(seen, sched)) and len(seen) == 3
    # per-layer scope reaches the target in every layer
    m2 = _model(1)
    masks2 = iterative_magnitude_pruning(m2, 0.5, 2, None, scope="layer")
    assert all(int((~v).sum()) == round(0.5 * v.numel()) for v in masks2.values())


def _lang_masks(m):
    """Two overlapping random masks over the same weights."""
    g = torch.Generator().manual_seed(5)
    a = {n: torch.rand(get_weight(m, n).shape, generator=g) < 0.6 for n in prunable_names(m)}
    b = {n: torch.rand(get_weight(m, n).shape, generator=g) < 0.6 for n in prunable_names(m)}
    return a, b


def test_pathway_step_touches_only_its_mask():
    m = _model()
    a, b = _lang_masks(m)
    pw = Pathways(m, {"en": a, "de": b})
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    # a few steps on both languages so Adam has momentum everywhere
    for i in range(4):
        for lang in ("en", "de"):
            pw.use(lang)
            opt.zero_grad()
            _loss(m, i).backward()
            pw.step(opt)
    names = prunable_names(m)
    before = {n: get_weight(m, n).detach().clone() for n in names}
    state_before = {n: opt.state[get_weight(m, n)]["exp_avg"].clone() for n in names}
    pw.use("en")
    opt.zero_grad()
    _loss(m, 9).backward()
    pw.step(opt)
    changed_overlap = 0
    for n in names:
        w = get_weight(m, n).detach()
        assert torch.equal(w[~a[n]], before[n][~a[n]]), n                  # outside mask_en: bit-exact
        assert torch.equal(opt.state[get_weight(m, n)]["exp_avg"][~a[n]], state_before[n][~a[n]])
        both = a[n] & b[n]
        changed_overlap += int((w[both] != before[n][both]).sum())
    assert changed_overlap > 0.9 * sum(int((a[n] & b[n]).sum()) for n in names)
    # a plain AdamW step (no pathway masking) would have moved weights outside mask_en
    opt.zero_grad()
    _loss(m, 10).backward()
    w0 = get_weight(m, "inp.weight").detach().clone()
    opt.step()
    assert not torch.equal(get_weight(m, "inp.weight").detach()[~a["inp.weight"]], w0[~a["inp.weight"]])


def test_pathway_switch_changes_forward():
    m = _model()
    a, b = _lang_masks(m)
    pw = Pathways(m, {"en": a, "de": b})
    x = torch.randn(2, 5, 6)
    pw.use("en")
    ya = m(x)
    params_before = [id(p) for p in m.parameters()]
    exp_a, _ = export_sparse(m, a)
    assert [id(p) for p in m.parameters()] == params_before          # optimizers stay valid
    torch.testing.assert_close(exp_a(x), ya)
    with pw.using("de"):
        yb = m(x)
    assert pw.active == "en"
    assert not torch.allclose(ya, yb)
    torch.testing.assert_close(m(x), ya)


def test_overlap_iou():
    m = _model()
    a, b = _lang_masks(m)
    assert mask_iou(a, a) == 1.0
    neg = {n: ~v for n, v in a.items()}
    assert mask_iou(a, neg) == 0.0
    inter = sum(int((a[n] & b[n]).sum()) for n in a)
    union = sum(int((a[n] | b[n]).sum()) for n in a)
    langs, mat = overlap_matrix({"en": a, "de": b, "fr": neg})
    assert langs == ["en", "de", "fr"]
    assert mat[0, 0] == 1.0 and mat[0, 2] == 0.0 and abs(mat[0, 1] - inter / union) < 1e-12
    assert torch.equal(mat, mat.T)


def test_plot_export_counts_and_save(tmp_path):
    m = _model()
    a, b = _lang_masks(m)
    pw = Pathways(m, {"en": a, "de": b})
    png = tmp_path / "overlap.png"
    pw.plot_overlap(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dense_total = sum(p.numel() for p in _model().parameters())
    pruned_total = sum(v.numel() for v in a.values())
    counts = pw.param_counts()
    assert counts["en"] == dense_total - pruned_total + sum(int(v.sum()) for v in a.values())
    exp, info = export_sparse(m, a, csr=True)
    exp_b, info_b = export_sparse(pw, "de")
    assert info_b["params_nonzero"] == counts["de"]
    assert all((get_weight(exp_b, n)[~v] == 0).all() for n, v in b.items())
    assert pw.export("en")[1]["params_nonzero"] == counts["en"]
    assert info["params_total"] == dense_total and info["params_nonzero"] == counts["en"]
    for n, v in a.items():
        w = get_weight(exp, n)
        assert (w[~v] == 0).all()
        torch.testing.assert_close(info["csr"][n].to_dense(), w.detach())
    assert not any("parametrizations" in k for k in exp.state_dict())
    save_pathway_masks(tmp_path / "masks.pt", pw.masks)
    back = load_pathway_masks(tmp_path / "masks.pt")
    assert all(torch.equal(back["de"][n], b[n]) for n in b)


def test_learn_pathway_masks_restores_dense_weights():
    m = _model()
    dense = {k: v.clone() for k, v in m.state_dict().items()}

    def train(model, lang, r):
        opt = torch.optim.SGD(model.parameters(), lr=0.2)
        for _ in range(3):
            opt.zero_grad()
            _loss(model, 0 if lang == "en" else 1).backward()
            opt.step()

    masks = learn_pathway_masks(m, ["en", "de"], 0.5, 2, train)
    for lang in ("en", "de"):
        total = sum(v.numel() for v in masks[lang].values())
        assert sum(int((~v).sum()) for v in masks[lang].values()) == round(0.5 * total)
    assert 0.0 < mask_iou(masks["en"], masks["de"]) < 1.0
    for k, v in m.state_dict().items():
        assert torch.equal(v, dense[k])
