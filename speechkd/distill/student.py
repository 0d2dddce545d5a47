"""Student construction for SSL distillation: configs, layer selection, layer-jumping init, heads.

* :func:`student_config` derives a student :class:`~speechkd.models.ssl.SSLConfig` from the teacher's
  (depth, width, front-end ``"cnn"`` = teacher CNN copy or ``"fbank"``);
  :func:`preset_config` gives named structures at (about) equal parameter budget — ``shallow_wide``
  (teacher width, L_t/6 layers: DistilHuBERT's 2 of 12), ``deep_thin`` (L_t layers) and ``middle``
  (L_t/2 layers), the last two with the width solved by :func:`solve_width` so that the parameter
  count matches ``shallow_wide`` (within a few %). :func:`count_params` counts analytically,
  without building the model.
* :func:`default_target_layers`: every L_t/4-th teacher layer (``[3, 6, 9, 12]`` for 12 layers).
* :func:`jump_layers` / :func:`init_student_from_teacher`: student layer i ← teacher layer
  ``round(i·L_t/L_s)`` (layer-jumping, i = 1..L_s), ``"first"`` (teacher layers 1..L_s) or a given
  list; plus the CNN / Fbank front-end, feature projection, positional conv and encoder LayerNorm,
  each copied when shapes match.
* :func:`build_student` (keyword arguments) / :func:`build_student_from_config` (the ``student``
  section of a distillation config, :data:`speechkd.distill.train.DISTILL_DEFAULTS`): the student
  built and initialised from the teacher (optionally keeping its HuBERT head, then loading
  ``init_from``).
* Prediction heads: :class:`LayerwiseHeads` (one Linear per target, each from the student layer at
  the same relative depth) or :class:`ExpandLastHead` (DistilHuBERT: one Linear from the last layer
  to ``n_targets·D``, split). :class:`Distiller` holds student + heads.

Example::

    >>> teacher = mini_ssl()                                        # 4 × 192
    >>> cfg = student_config(teacher.cfg, n_layers=2)
    >>> student = SSLModel(cfg)
    >>> init_student_from_teacher(student, teacher)                 # layers 2, 4 → student 1, 2
    [2, 4]
    >>> d = Distiller(student, target_layers=default_target_layers(4), teacher_dim=192)
    >>> out = d(torch.randn(2, 16000), torch.tensor([16000, 12000]))
    >>> [p.shape for p in out.preds]            # 4 × (2, 49, 192), teacher layers 1, 2, 3, 4
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..models.checkpoint import load_checkpoint
from ..models.ssl import SSLConfig, SSLModel, SSLOutput
from ..utils.errors import ConfigError

log = logging.getLogger("speechkd")

PRESETS = ("shallow_wide", "middle", "deep_thin")


# -------------------------------------------------------------------------------------- counting
def count_params(cfg: SSLConfig) -> int:
    """Number of parameters of ``SSLModel(cfg)`` computed from the config (no model is built)."""
    d, f = cfg.d_model, cfg.ffn_dim
    n = 0
    if cfg.frontend == "cnn":
        in_ch = 1
        for i, (dim, k, _s) in enumerate(cfg.conv_layers):
            n += dim * in_ch * k + (dim if cfg.conv_bias else 0)
            if cfg.conv_norm == "layer_norm" or i == 0:
                n += 2 * dim
            in_ch = dim
        fe_out = in_ch
    else:
        c = cfg.fbank_channels or d
        n += cfg.fbank_dim * c * 3 + c + c * c * 3 + c
        fe_out = c
    n += (2 * fe_out if cfg.proj_layer_norm else 0) + fe_out * d + d       # feature projection
    n += d                                                                  # masked_spec_embed
    if cfg.pos_conv_kernel > 0:                                             # weight-normed conv
        n += d * (d // cfg.pos_conv_groups) * cfg.pos_conv_kernel + cfg.pos_conv_kernel + d
    n += 2 * d                                                              # encoder LayerNorm
    n += cfg.n_layers * (4 * (d * d + d) + 4 * d + d * f + f + f * d + d)
    if cfg.num_labels > 0:
        n += d * cfg.final_dim + cfg.final_dim + cfg.num_labels * cfg.final_dim
    return n


# ---------------------------------------------------------------------------------- configuration
def _pick_heads(d: int, head_dim: int) -> int:
    """The divisor h of d whose d/h is closest to head_dim (also used for conv groups)."""
    divisors = [h for h in range(1, d + 1) if d % h == 0]
    return min(divisors, key=lambda h: (abs(d / h - head_dim), -h))


def student_config(teacher_cfg: SSLConfig, n_layers: int, d_model: Optional[int] = None,
                   ffn_dim: Optional[int] = None, n_heads: Optional[int] = None, frontend: str = "cnn",
                   **overrides) -> SSLConfig:
    """Student config from a teacher config.

    Width defaults to the teacher's; a new width keeps the teacher's FFN ratio and head size
    (heads = the divisor of ``d_model`` closest to ``d_model / teacher_head_dim``) and about the
    teacher's channels per positional-conv group (groups likewise a divisor of ``d_model``). The student has no HuBERT head
    (``num_labels=0``) and no layer drop; ``overrides`` set any other :class:`SSLConfig` field.
    ``frontend="fbank"`` replaces the teacher CNN by the Fbank front-end (hubert_kd).
    """
    if frontend not in ("cnn", "fbank"):
        raise ConfigError(f"student frontend must be 'cnn' or 'fbank', got '{frontend}'")
    t = teacher_cfg
    d = d_model or t.d_model
    head_dim = t.d_model // t.n_heads
    kw = dict(n_layers=n_layers, d_model=d, frontend=frontend, num_labels=0, layerdrop=0.0,
              ffn_dim=ffn_dim or (t.ffn_dim if d == t.d_model else int(round(d * t.ffn_dim / t.d_model))),
              n_heads=n_heads or (t.n_heads if d == t.d_model else _pick_heads(d, head_dim)),
              pos_conv_groups=_pick_heads(d, t.d_model // t.pos_conv_groups))
    if frontend == "fbank" and t.frontend == "fbank":
        kw["fbank_channels"] = t.fbank_channels
    elif frontend == "fbank":
        kw["fbank_channels"] = 0
    kw.update(overrides)
    cfg = dataclasses.replace(t, **kw)
    cfg.conv_layers = [list(c) for c in (overrides.get("conv_layers") or t.conv_layers)]
    if cfg.d_model % cfg.n_heads:
        raise ConfigError(f"student d_model {cfg.d_model} not divisible by n_heads {cfg.n_heads}")
    return cfg


def solve_width(teacher_cfg: SSLConfig, n_layers: int, budget: int, step: Optional[int] = None,
                frontend: str = "cnn", **overrides) -> SSLConfig:
    """The student config with ``n_layers`` whose width (a multiple of ``step``; default 16 for
    teachers at least 512 wide, else 4) gives the parameter count closest to ``budget``."""
    step = step or (16 if teacher_cfg.d_model >= 512 else 4)
    best = None
    for d in range(step, 4 * teacher_cfg.d_model + step, step):
        cfg = student_config(teacher_cfg, n_layers, d_model=d, frontend=frontend, **overrides)
        gap = abs(count_params(cfg) - budget)
        if best is None or gap < best[0]:      # no early stop: a group-count change breaks monotonicity
            best = (gap, cfg)
    return best[1]


def preset_config(teacher_cfg: SSLConfig, name: str, frontend: str = "cnn", **overrides) -> SSLConfig:
    """Named student structures at about the parameter budget of ``shallow_wide``.

    ``shallow_wide``: max(1, round(L_t/6)) layers at teacher width (2 × 768 for HuBERT Base);
    ``middle``: L_t/2 layers; ``deep_thin``: L_t layers — widths solved by :func:`solve_width`.
    """
    L = teacher_cfg.n_layers
    shallow = student_config(teacher_cfg, max(1, round(L / 6)), frontend=frontend, **overrides)
    if name == "shallow_wide":
        return shallow
    depth = {"middle": max(2, L // 2), "deep_thin": L}.get(name)
    if depth is None:
        raise ConfigError(f"unknown student preset '{name}'; choose from {', '.join(PRESETS)}")
    return solve_width(teacher_cfg, depth, count_params(shallow), frontend=frontend, **overrides)


# ------------------------------------------------------------------------------- layer selection
def default_target_layers(n_teacher_layers: int, n_targets: int = 4) -> List[int]:
    """Every ``L_t/n_targets``-th teacher layer (1-based, HF ``hidden_states`` index):
    12 → [3, 6, 9, 12]; 4 → [1, 2, 3, 4]."""
    return sorted({max(1, round(k * n_teacher_layers / n_targets)) for k in range(1, n_targets + 1)})


def jump_layers(n_teacher_layers: int, n_student_layers: int,
                mode: Union[str, Sequence[int]] = "jump") -> List[int]:
    """Teacher layer (1-based) that initialises each student layer i = 1..L_s.

    ``"jump"``: ``round(i·L_t/L_s)`` (24 → 12 gives 2, 4, ..., 24); ``"first"``: 1..L_s; a list is
    returned as given (checked to be in range and of length L_s).
    """
    if isinstance(mode, str):
        if mode == "jump":
            return [int(math.floor(i * n_teacher_layers / n_student_layers + 0.5))
                    for i in range(1, n_student_layers + 1)]
        if mode == "first":
            if n_student_layers > n_teacher_layers:
                raise ConfigError(f"cannot init {n_student_layers} layers from the first of {n_teacher_layers}")
            return list(range(1, n_student_layers + 1))
        raise ConfigError(f"unknown layer init mode '{mode}' (jump | first | list of layers)")
    layers = [int(x) for x in mode]
    if len(layers) != n_student_layers or not all(1 <= x <= n_teacher_layers for x in layers):
        raise ConfigError(f"layer list {layers} must give {n_student_layers} layers in 1..{n_teacher_layers}")
    return layers


def _copy_module(dst: nn.Module, src: nn.Module) -> bool:
    sd_d, sd_s = dst.state_dict(), src.state_dict()
    if sd_d.keys() != sd_s.keys() or any(sd_d[k].shape != sd_s[k].shape for k in sd_d):
        return False
    dst.load_state_dict(sd_s)
    return True


@torch.no_grad()
def init_student_from_teacher(student: SSLModel, teacher: SSLModel,
                              layers: Union[str, Sequence[int], None] = "jump") -> List[int]:
    """Copy teacher weights into the student where shapes match; returns the teacher layers used.

    Front-end (CNN or Fbank, same kind), feature projection, mask embedding, positional conv and
    encoder LayerNorm are copied when their shapes match; encoder layers follow :func:`jump_layers`
    (``layers=None`` copies no encoder layer). Raises ConfigError if encoder layers are requested but
    the widths differ.
    """
    for name in ("feature_extractor", "feature_projection", "masking"):
        if student.cfg.frontend == teacher.cfg.frontend or name != "feature_extractor":
            _copy_module(getattr(student, name), getattr(teacher, name))
    enc_s, enc_t = student.encoder, teacher.encoder
    if enc_s.pos_conv_embed is not None and enc_t.pos_conv_embed is not None:
        _copy_module(enc_s.pos_conv_embed, enc_t.pos_conv_embed)
    _copy_module(enc_s.layer_norm, enc_t.layer_norm)
    if layers is None:
        return []
    chosen = jump_layers(len(enc_t.layers), len(enc_s.layers), layers)
    for i, k in enumerate(chosen):
        if not _copy_module(enc_s.layers[i], enc_t.layers[k - 1]):
            raise ConfigError(f"cannot copy teacher layer {k} into student layer {i + 1}: widths differ "
                              f"(student d={student.cfg.d_model}/ffn={student.cfg.ffn_dim}, teacher "
                              f"d={teacher.cfg.d_model}/ffn={teacher.cfg.ffn_dim})")
    return chosen


def build_student(teacher: SSLModel, n_layers: Optional[int] = None, preset: Optional[str] = None,
                  d_model: Optional[int] = None, frontend: str = "cnn",
                  init: Union[str, Sequence[int], None] = "jump", **overrides):
    """Student model from a teacher: ``preset`` or ``n_layers`` (+ ``d_model``), then
    :func:`init_student_from_teacher` (encoder layers only when the width equals the teacher's;
    ``init=None`` keeps the random init). Returns ``(student, teacher_layers_used)``.

    Example: ``build_student(teacher, preset="deep_thin", frontend="fbank")``.
    """
    if preset is not None:
        cfg = preset_config(teacher.cfg, preset, frontend=frontend, **overrides)
    elif n_layers is not None:
        cfg = student_config(teacher.cfg, n_layers, d_model=d_model, frontend=frontend, **overrides)
    else:
        raise ConfigError("build_student needs a preset or n_layers")
    student = SSLModel(cfg)
    if init is None:
        return student, []
    same_width = cfg.d_model == teacher.cfg.d_model and cfg.ffn_dim == teacher.cfg.ffn_dim
    return student, init_student_from_teacher(student, teacher, init if same_width else None)


# ------------------------------------------------------------------------------------ from config
def _init_mode(init) -> Union[str, List[int], None]:
    if init is None or (isinstance(init, str) and init.lower() == "none"):
        return None
    if isinstance(init, str) and init not in ("jump", "first"):
        raise ConfigError(f"student.init must be jump, first, none or a list of teacher layers, got '{init}'")
    return init if isinstance(init, str) else [int(v) for v in init]


def build_student_from_config(teacher: SSLModel, scfg: dict) -> SSLModel:
    """Student :class:`SSLModel` from the ``student`` config section, initialised from the teacher."""
    overrides = dict(scfg.get("overrides") or {})
    frontend = scfg.get("frontend", "cnn")
    if scfg.get("preset"):
        cfg = preset_config(teacher.cfg, scfg["preset"], frontend=frontend, **overrides)
    elif scfg.get("match_layers") and not scfg.get("d_model"):
        if not scfg.get("n_layers"):
            raise ConfigError("student.match_layers needs student.n_layers")
        budget = count_params(student_config(teacher.cfg, int(scfg["match_layers"]), frontend=frontend,
                                             **overrides))
        cfg = solve_width(teacher.cfg, int(scfg["n_layers"]), budget, frontend=frontend, **overrides)
    else:
        if not scfg.get("n_layers"):
            raise ConfigError("student needs a preset or n_layers")
        cfg = student_config(teacher.cfg, int(scfg["n_layers"]), d_model=scfg.get("d_model"),
                             ffn_dim=scfg.get("ffn_dim"), n_heads=scfg.get("n_heads"), frontend=frontend,
                             **overrides)
    keep_head = bool(scfg.get("keep_teacher_head"))
    if keep_head:
        if teacher.head is None:
            raise ConfigError("student.keep_teacher_head needs a teacher with a HuBERT head (num_labels > 0)")
        cfg = dataclasses.replace(cfg, num_labels=teacher.cfg.num_labels, final_dim=teacher.cfg.final_dim,
                                  logit_temp=teacher.cfg.logit_temp)
    student = SSLModel(cfg)
    mode = _init_mode(scfg.get("init", "jump"))
    same_width = cfg.d_model == teacher.cfg.d_model and cfg.ffn_dim == teacher.cfg.ffn_dim
    if mode is not None and not same_width:
        log.warning("student width %d/%d differs from the teacher's %d/%d: encoder layers not initialised "
                    "from the teacher", cfg.d_model, cfg.ffn_dim, teacher.cfg.d_model, teacher.cfg.ffn_dim)
        mode = None
    if mode is not None or scfg.get("init_frontend", True):
        used = init_student_from_teacher(student, teacher, mode)
        log.info("student initialised from the teacher (encoder layers %s)", used or "none")
        if keep_head:   # the head reads the last layer: valid only on the teacher's own stack of layers
            if used != list(range(1, teacher.cfg.n_layers + 1)):
                raise ConfigError(f"student.keep_teacher_head needs every teacher layer copied in order "
                                  f"(student.init jump with n_layers {teacher.cfg.n_layers}), got {used or 'none'}")
            student.head.load_state_dict(teacher.head.state_dict())
            log.info("student keeps the teacher's HuBERT head (%d labels)", teacher.cfg.num_labels)
    elif keep_head:
        raise ConfigError("student.keep_teacher_head needs the teacher's layers copied (student.init jump)")
    if scfg.get("init_from"):
        src, _ = load_checkpoint(scfg["init_from"])
        try:
            student.load_state_dict(src.state_dict())
        except RuntimeError as e:
            raise ConfigError(f"{scfg['init_from']}: student.init_from does not match the student: "
                              f"{str(e).splitlines()[0]}") from None
        log.info("student weights loaded from %s", scfg["init_from"])
    n = sum(p.numel() for p in student.parameters())
    log.info("student: %d layers x %d (%s front-end), %.2fM params", cfg.n_layers, cfg.d_model, frontend, n / 1e6)
    return student


# ------------------------------------------------------------------------------------------ heads
class LayerwiseHeads(nn.Module):
    """One ``Linear(student_dim, teacher_dim)`` per target; target j reads student layer
    ``source_layers[j]``. ``forward(hidden_states list) -> list of (B, T, teacher_dim)``."""

    def __init__(self, student_dim: int, teacher_dim: int, source_layers: Sequence[int]):
        super().__init__()
        self.source_layers = list(source_layers)
        self.linears = nn.ModuleList(nn.Linear(student_dim, teacher_dim) for _ in self.source_layers)

    def forward(self, hidden_states: Sequence[Tensor]) -> List[Tensor]:
        return [lin(hidden_states[k]) for lin, k in zip(self.linears, self.source_layers)]


class ExpandLastHead(nn.Module):
    """DistilHuBERT's shared head: ``Linear(student_dim, n_targets·teacher_dim)`` on the last layer,
    split into n_targets (B, T, teacher_dim) predictions."""

    def __init__(self, student_dim: int, teacher_dim: int, n_targets: int):
        super().__init__()
        self.n_targets, self.teacher_dim = n_targets, teacher_dim
        self.linear = nn.Linear(student_dim, n_targets * teacher_dim)

    def forward(self, hidden_states: Sequence[Tensor]) -> List[Tensor]:
        return list(self.linear(hidden_states[-1]).split(self.teacher_dim, dim=-1))


@dataclass
class DistillerOutput:
    preds: List[Tensor]             # one (B, T', teacher_dim) per target layer
    lengths: Tensor                 # (B,)
    padding_mask: Tensor            # (B, T') True = padding
    student: SSLOutput


class Distiller(nn.Module):
    """Student SSL model + prediction heads.

    Args:
        student: the student :class:`SSLModel`.
        target_layers: teacher layers to predict (1-based ``hidden_states`` indices).
        teacher_dim, n_teacher_layers: teacher width and depth (depth sets where layer-wise heads read:
            target l ← student layer ``max(1, round(l·L_s/L_t))``).
        head: ``"layerwise"`` or ``"expand_last"``.

    ``forward(x, lengths=None, mask=False) -> DistillerOutput``.
    """

    def __init__(self, student: SSLModel, target_layers: Sequence[int], teacher_dim: int,
                 head: str = "expand_last", n_teacher_layers: Optional[int] = None):
        super().__init__()
        self.student = student
        self.target_layers = list(target_layers)
        d = student.cfg.d_model
        if head == "layerwise":
            L_s = student.cfg.n_layers
            L_t = n_teacher_layers or max(self.target_layers)
            src = [min(L_s, max(1, int(math.floor(l * L_s / L_t + 0.5)))) for l in self.target_layers]
            self.heads = LayerwiseHeads(d, teacher_dim, src)
        elif head == "expand_last":
            self.heads = ExpandLastHead(d, teacher_dim, len(self.target_layers))
        else:
            raise ConfigError(f"unknown prediction head '{head}' (layerwise | expand_last)")
        self.head_kind = head

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None, mask: bool = False) -> DistillerOutput:
        out = self.student(x, lengths, mask=mask)
        return DistillerOutput(self.heads(out.hidden_states), out.lengths, out.padding_mask, out)


@torch.no_grad()
def teacher_targets(teacher: SSLModel, x: Tensor, lengths: Optional[Tensor], target_layers: Sequence[int]):
    """Run the (frozen, eval-mode) teacher: -> (list of (B, T', D) targets, SSLOutput)."""
    out = teacher(x, lengths, mask=False)
    return [out.hidden_states[k] for k in target_layers], out
