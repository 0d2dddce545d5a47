"""Speech → speech distillation training (DistilHuBERT / HuBERT-KD / DistilXLSR style).

Library form of ``speechkd-distill``::

    cfg = load_config("conf/distill.yaml", defaults=DISTILL_DEFAULTS)
    model_dir = distill(cfg, "exp/teacher/model", "data/train", "data/dev", "exp/student")
    student, config = load_checkpoint(model_dir)     # SSLModel (type ssl), no prediction heads

Config sections (every key overridable as ``--section.key value``):

``student``
    ``preset`` (``shallow_wide`` | ``middle`` | ``deep_thin``, equal-parameter structures of
    :func:`~speechkd.distill.student.preset_config`) or ``n_layers`` (+ ``d_model``, ``ffn_dim``,
    ``n_heads``); ``frontend`` ``cnn`` (the teacher's waveform CNN) or ``fbank`` (80-dim Fbank, read
    from ``feats.scp`` + CMVN); ``init`` ``jump`` | ``first`` | ``none`` | a list of teacher layers
    (1-based) for the student layers; ``init_frontend`` copies the teacher front-end/projection/pos-conv
    where shapes match (also with ``init: none``); ``init_from`` a student checkpoint whose weights are
    loaded afterwards (e.g. the front-end stage's output); ``freeze_frontend`` keeps the front-end
    (+ the feature projection, unless a new width left it random) fixed; ``match_layers`` (with
    ``n_layers`` and no ``d_model``): the width is solved so that the student has the parameters of a
    teacher-width student with ``match_layers`` layers (deep & thin vs shallow & wide at equal budget
    for any depth); ``head`` ``expand_last`` | ``layerwise``; ``keep_teacher_head`` (every teacher layer
    copied in order, e.g. the ``frontend`` stage with a new front-end kind): the student keeps the teacher's
    HuBERT head (label embeddings, ``final_proj``), so it is a teacher for ``loss.w_disc``; ``overrides`` any other
    :class:`~speechkd.models.ssl.SSLConfig` field (dropout, ...).
``distill``
    ``stage``: ``full`` (layer regression + optional discriminative loss) or ``frontend`` (stage A of
    hubert_kd: only the student front-end + projection are trained, L1 to the teacher's
    CNN+projection output ``frontend_out``); ``target_layers`` (teacher layers, 1-based; null =
    every L_t/``n_targets``-th); ``skip_last`` (true: the teacher's last layer is dropped from the targets,
    so the only signal from it is ``w_disc``'s codebook distribution: a test of whether regressing that
    layer leaves the discriminative loss nothing to add).
``loss``
    ``w_rec`` (L1), ``w_cos`` (−log σ(cos)), ``w_disc`` (KL(teacher || student) over the teacher's
    HuBERT codebook; needs a teacher with a HubertHead), ``disc_kind`` ``type1`` (student projected
    into the teacher's ``final_proj`` space, cos with the frozen label embeddings / τ) | ``type2``
    (linear logits), ``tau`` (null = the teacher's ``logit_temp``), ``disc_head_init`` ``random`` (the
    type1 projection starts random and learns the codebook distribution from the student's top layer) |
    ``teacher`` (a copy of the teacher's ``final_proj`` where the widths match: with a layer-jumped top
    layer the KL is then ~0 from the start and carries little signal).
``spec_augment``
    ``enabled``, ``freq_masks``, ``freq_width``, ``time_masks``, ``time_width``: SpecAugment on the
    student's Fbank input in training (the teacher always sees clean input).
``data`` / ``optim`` / ``train``
    as for every trainer (:data:`speechkd.train.data.DATA_DEFAULTS`, ``OPTIM_DEFAULTS``,
    ``TRAIN_DEFAULTS``); ``data.cmvn`` is the student's CMVN (fbank student).

When the teacher reads waveforms (CNN) and the student Fbank (or the reverse) the loader gives both
inputs of each utterance: ``x`` (teacher) and ``s_x`` (student) — see
:class:`~speechkd.distill.data.PairedDataset`.

Outputs: ``exp/model`` (student SSL checkpoint, heads dropped unless ``keep_teacher_head``, then with the
teacher's ``kmeans.pt`` codebook; + ``cmvn.npz`` for a Fbank student;
loadable by ``speechkd-finetune --init``), ``exp/model_best``, ``exp/checkpoints/step_N`` (with the
heads in ``train_state.pt``), ``exp/train.log`` (per-layer ``l1/<k>``, ``cos/<k>``, ``kl``), and
``exp/tensorboard``.
"""
from __future__ import annotations

import filecmp
import logging
import shutil
from pathlib import Path
from typing import Dict, Sequence

import torch
from torch import nn

from ..models.checkpoint import load_checkpoint
from ..models.ssl import SSLModel
from ..train.data import DATA_DEFAULTS, make_dataset, resolve_cmvn
from ..train.optim import OPTIM_DEFAULTS
from ..train.rng import seed_everything
from ..train.trainer import TRAIN_DEFAULTS, Trainer
from ..utils.config import merge, save_config
from ..utils.errors import ConfigError
from .data import PairedDataset, make_distill_loader, spec_augment
from .losses import DiscriminativeHead, DistillLoss, frontend_loss, lengths_to_padding_mask
from .student import Distiller, build_student_from_config, default_target_layers

log = logging.getLogger("speechkd")

DISTILL_DEFAULTS: Dict = {
    "student": {"preset": None, "n_layers": 2, "d_model": None, "ffn_dim": None, "n_heads": None,
                "match_layers": None, "frontend": "cnn", "init": "jump", "init_frontend": True, "init_from": None,
                "freeze_frontend": False, "head": "expand_last", "keep_teacher_head": False,
                "overrides": {}},
    "distill": {"stage": "full", "target_layers": None, "n_targets": 4, "skip_last": False},
    "loss": {"w_rec": 1.0, "w_cos": 1.0, "w_disc": 0.0, "disc_kind": "type1", "tau": None,
             "disc_head_init": "random"},
    "spec_augment": {"enabled": False, "freq_masks": 2, "freq_width": 10, "time_masks": 2, "time_width": 20},
    "data": dict(DATA_DEFAULTS),
    "optim": dict(OPTIM_DEFAULTS, lr=5e-4, warmup_steps=100),
    "train": dict(TRAIN_DEFAULTS, max_steps=1000),
}

STAGES = ("full", "frontend")

class DistillTask(nn.Module):
    """Student + heads + loss; the frozen teacher is held outside the module tree (not saved, not trained).

    ``forward(batch) -> (loss, stats)`` with ``batch`` from :func:`~speechkd.distill.data.paired_collate`:
    ``x``/``x_lengths`` the teacher input and, when the front-ends differ, ``s_x``/``s_x_lengths`` the
    student input.
    """

    def __init__(self, teacher: SSLModel, student: SSLModel, cfg: dict):
        super().__init__()
        self._teacher = [teacher.eval().requires_grad_(False)]
        dcfg, lcfg, scfg = cfg["distill"], cfg["loss"], cfg["student"]
        self.stage = dcfg.get("stage", "full")
        if self.stage not in STAGES:
            raise ConfigError(f"distill.stage must be one of {', '.join(STAGES)}, got '{self.stage}'")
        L_t = teacher.cfg.n_layers
        layers = dcfg.get("target_layers") or default_target_layers(L_t, int(dcfg.get("n_targets", 4)))
        layers = [int(k) for k in layers]
        if not all(1 <= k <= L_t for k in layers):
            raise ConfigError(f"distill.target_layers {layers} must be in 1..{L_t}")
        if dcfg.get("skip_last"):   # no regression onto the layer the codebook (L_disc) is computed from
            layers = [k for k in layers if k != L_t]
            if not layers:
                raise ConfigError(f"distill.skip_last leaves no target layer (targets were [{L_t}])")
        self.target_layers = layers
        self.distiller = Distiller(student, layers, teacher.cfg.d_model, head=scfg.get("head", "expand_last"),
                                   n_teacher_layers=L_t)
        w_disc = float(lcfg.get("w_disc", 0.0)) if self.stage == "full" else 0.0
        if w_disc > 0 and teacher.head is None:
            raise ConfigError("loss.w_disc > 0 needs a teacher with a HuBERT head (num_labels > 0)")
        head = teacher.head
        tau = float(lcfg["tau"]) if lcfg.get("tau") else (head.logit_temp if head is not None else 0.1)
        self.tau = tau
        self.loss = DistillLoss(float(lcfg.get("w_rec", 1.0)), float(lcfg.get("w_cos", 1.0)), w_disc,
                                student.cfg.d_model, head.final_proj.out_features if head is not None else None,
                                head.label_embs.shape[0] if head is not None else None,
                                lcfg.get("disc_kind", "type1"), tau, layer_names=layers)
        head_init = lcfg.get("disc_head_init", "random")
        if head_init not in ("random", "teacher"):
            raise ConfigError(f"loss.disc_head_init must be random or teacher, got '{head_init}'")
        if w_disc > 0 and lcfg.get("disc_kind", "type1") == "type1":
            self.loss.disc_head = DiscriminativeHead.from_hubert_head(head, student.cfg.d_model,
                                                                      copy_proj=head_init == "teacher")
            self.loss.disc_head.tau = tau
        self.spec_cfg = cfg.get("spec_augment") or {}
        if self.stage == "frontend":
            trainable = ("feature_extractor.", "feature_projection.")
            for n, p in student.named_parameters():
                p.requires_grad_(n.startswith(trainable))
            for p in self.distiller.heads.parameters():
                p.requires_grad_(False)
        elif scfg.get("freeze_frontend"):
            # the projection is frozen with the front-end only when it holds trained weights (copied
            # from the teacher or loaded by init_from), not when a new width left it random
            proj_trained = bool(scfg.get("init_from")) or all(
                a.shape == b.shape for a, b in zip(student.feature_projection.parameters(),
                                                   teacher.feature_projection.parameters()))
            frozen = ("feature_extractor.", "feature_projection.") if proj_trained else ("feature_extractor.",)
            for n, p in student.named_parameters():
                if n.startswith(frozen):
                    p.requires_grad_(False)

    @property
    def teacher(self) -> SSLModel:
        return self._teacher[0]

    @property
    def student(self) -> SSLModel:
        return self.distiller.student

    def _apply(self, fn, *args, **kwargs):  # .to(device) also moves the (unregistered) teacher
        self._teacher[0]._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def student_input(self, batch):
        if "s_x" in batch:
            x, lengths = batch["s_x"], batch["s_x_lengths"]
        else:
            x, lengths = batch["x"], batch["x_lengths"]
        if self.training and self.spec_cfg.get("enabled") and self.student.cfg.frontend == "fbank":
            x = spec_augment(x, lengths, int(self.spec_cfg.get("freq_masks", 2)),
                             int(self.spec_cfg.get("freq_width", 10)), int(self.spec_cfg.get("time_masks", 2)),
                             int(self.spec_cfg.get("time_width", 20)))
        return x, lengths

    def forward(self, batch):
        t_x, t_len = batch["x"], batch["x_lengths"]
        s_x, s_len = self.student_input(batch)
        teacher = self.teacher
        if self.stage == "frontend":
            with torch.no_grad():
                t_fe, t_fe_len = teacher.extract_features(t_x, t_len)
            s_fe, s_fe_len = self.student.extract_features(s_x, s_len)
            loss = frontend_loss(s_fe, t_fe, s_fe_len, t_fe_len)
            return loss, {"fe_l1": float(loss.detach())}
        with torch.no_grad():
            t_out = teacher(t_x, t_len, mask=False)
            targets = [t_out.hidden_states[k] for k in self.target_layers]
            t_logits = None
            if self.loss.disc_head is not None:
                proj = teacher.head.final_proj(t_out.last_hidden_state)
                from .losses import codebook_logits

                t_logits = codebook_logits(proj, teacher.head.label_embs, self.tau)
        out = self.distiller(s_x, s_len)
        T = min(out.padding_mask.shape[1], t_out.padding_mask.shape[1])
        lengths = torch.minimum(out.lengths, t_out.lengths).clamp(max=T)
        pm = lengths_to_padding_mask(lengths, T)
        preds = [p[:, :T] for p in out.preds]
        targets = [t[:, :T] for t in targets]
        loss, logs = self.loss(preds, targets, pm,
                               student_last=out.student.last_hidden_state[:, :T],
                               teacher_logits=t_logits[:, :T] if t_logits is not None else None,
                               codebook=teacher.head.label_embs if teacher.head is not None else None)
        return loss, logs


def distill_step(task, batch):
    return task(batch)


# ----------------------------------------------------------------------------------------- recipe
def _normalise_cfg(cfg: dict) -> dict:
    cfg = merge(DISTILL_DEFAULTS, cfg)
    for sec in ("student", "distill", "loss", "spec_augment"):
        unknown = set(cfg[sec]) - set(DISTILL_DEFAULTS[sec])
        if unknown:
            raise ConfigError(f"unknown {sec} option(s): {', '.join(sorted(unknown))}")
    return cfg


def distill(cfg: dict, teacher_dir, train_data, valid_data=None, exp_dir="exp/student") -> Path:
    """Distil the teacher checkpoint into a student (see module doc); returns ``exp_dir/model``."""
    cfg = _normalise_cfg(cfg)
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    teacher, t_cfg = load_checkpoint(teacher_dir)
    if not isinstance(teacher, SSLModel):
        raise ConfigError(f"{teacher_dir}: teacher must be an SSL checkpoint (type ssl), "
                          f"got '{t_cfg['model'].get('type')}'")
    seed = int(cfg["train"].get("seed", 0))
    seed_everything(seed)                          # student init (heads, random layers) is seeded
    student = build_student_from_config(teacher, cfg["student"])
    task = DistillTask(teacher, student, cfg)
    cfg["teacher"] = str(teacher_dir)
    cfg["distill"] = dict(cfg["distill"], target_layers=task.target_layers)

    # data: one input kind per front-end; both when they differ
    data_cfg = cfg["data"]
    t_fe, s_fe = teacher.cfg.frontend, student.cfg.frontend
    t_cmvn = s_cmvn = None
    if t_fe == "fbank":
        t_cmvn = Path(teacher_dir) / "cmvn.npz"
        if not t_cmvn.exists():
            raise ConfigError(f"{teacher_dir}: Fbank teacher without cmvn.npz")
    if s_fe == "fbank":
        s_cmvn = resolve_cmvn(data_cfg, train_data, exp_dir, init_dir=teacher_dir if t_fe == "fbank" else None)
        cfg["data"] = dict(data_cfg, cmvn=str(s_cmvn))

    def dataset(d):
        t_ds = make_dataset(t_fe, d, data_cfg, cmvn=t_cmvn, text_file=None)
        if t_fe == s_fe and (t_fe == "cnn" or filecmp.cmp(t_cmvn, s_cmvn, shallow=False)):
            return t_ds
        return PairedDataset(t_ds, make_dataset(s_fe, d, data_cfg, cmvn=s_cmvn, text_file=None))

    train_loader = make_distill_loader(dataset(train_data), t_fe, data_cfg, seed=seed, train=True)
    valid_loader = (make_distill_loader(dataset(valid_data), t_fe, data_cfg, seed=seed, train=False)
                    if valid_data is not None else None)
    cfg["model"] = student.model_config()
    save_config(cfg, exp_dir / "config.yaml")
    n_train = sum(p.numel() for p in task.parameters() if p.requires_grad)
    log.info("distillation stage '%s': targets %s, %d trainable params", task.stage, task.target_layers, n_train)

    # a student that keeps the teacher's HuBERT head predicts the teacher's clusters: its codebook goes along
    t_kmeans = Path(teacher_dir) / "kmeans.pt"
    keep_codebook = bool(cfg["student"].get("keep_teacher_head")) and t_kmeans.exists()

    def extra_save(d: Path):
        if s_cmvn is not None:
            shutil.copyfile(s_cmvn, d / "cmvn.npz")
        if keep_codebook:
            shutil.copyfile(t_kmeans, d / "kmeans.pt")

    trainer = Trainer(task, distill_step, cfg["optim"], exp_dir, cfg,
                      state_dict_fn=lambda t: t.distiller.student.state_dict(), extra_save_fn=extra_save)
    trainer.fit(train_loader, valid_loader)
    return exp_dir / "model"


def target_layers_of(exp_dir) -> Sequence[int]:
    """Teacher layers a finished distillation run predicted (from its ``config.yaml``)."""
    from ..utils.config import load_yaml

    return list(load_yaml(Path(exp_dir) / "config.yaml")["distill"]["target_layers"])
