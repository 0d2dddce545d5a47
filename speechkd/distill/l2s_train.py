"""Distill-L2S fine-tuning: CTC fine-tuning (:mod:`speechkd.train.ctc`) + λ · L2S distillation term.

The glue between the L2S loss (:mod:`speechkd.distill.l2s`: CTC-argmax shrinking, nearest/linear
interpolation, learnable projection, MSE), a frozen text teacher (:class:`speechkd.models.text.TextEncoder`,
any HF encoder on local disk: InfoXLM, XLM-R, or the recipe's mini MLM) and the fine-tuning loop's
extra-loss hook. Per training step::

    log_probs, out_lengths, ssl_out = ctc_model(x, x_lengths)               # (B,T,V), (B,), SSLOutput
    text, text_len = text_states.get(batch["utts"])                          # (B,N,D'), (B,)
    loss = ctc + λ · L2SLoss(ssl_out.last_hidden_state, log_probs, out_lengths, text, text_len)

The text teacher's states of each training utterance's transcript are either precomputed once and
cached (``l2s.precompute: true``, default; a ``.pt`` file keyed by utterance id, reused when its
text model/layer/texts match) or computed on the fly per batch (``false``). The projection is trained
with the model (it sits at ``task.extra`` and its state is kept in ``train_state.pt``); the saved
``model/`` is a plain CTC checkpoint, decodable like any other.

Config section (``l2s:``; with ``weight: 0`` or no section, plain fine-tuning runs unchanged)::

    l2s:
      weight: 0.5              # λ
      text_model: exp/text_lm  # HF encoder dir
      layer: -1                # hidden-state index of the text model (0 = embeddings)
      interpolation: nearest   # nearest (paper) | linear (ablation)
      text_file: text          # transcript file of the train data dir given to the text model
      precompute: true         # cache states per utterance (else encode per batch)
      cache: null              # cache file (default <exp>/l2s_text_states.pt)
      target_norm: none        # none (paper) | center | standardize: text states around their training-set
                               # mean (per dimension std); needs precompute

Why ``target_norm``: the states of a small text model can be nearly collinear (the mini zoo's text_ml:
token states of the training transcripts with mean pairwise cosine ~1, logged as "mean pairwise cosine"),
so the projection reaches a near-zero MSE with a constant output and the term carries no signal (the mini
table's L2S MSE ended at ~0.002, a random-weight text model's at ~0.6). Around the mean they differ.

Library use::

    cfg = load_config("conf/finetune.yaml", ["l2s.weight=0.5", "l2s.text_model=exp/text_lm"],
                      defaults=L2S_FINETUNE_DEFAULTS)
    finetune_l2s(cfg, "data/train_sub_de", "data/dev_de", "exp/de/lam0.5/seed1",
                 token_dir="data/token_char", init="exp/teacher/model")
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..train.ctc import FINETUNE_DEFAULTS, finetune_ctc
from ..utils.config import merge
from ..utils.errors import ConfigError, DataError
from ..utils.fileio import atomic_path
from .l2s import L2SLoss

log = logging.getLogger("speechkd")

#: Defaults of the ``l2s:`` config section.
L2S_DEFAULTS: Dict = {
    "weight": 0.0,
    "text_model": None,
    "layer": -1,
    "interpolation": "nearest",
    "text_file": "text",
    "precompute": True,
    "cache": None,
    "batch_size": 32,
    "max_length": 512,
    "target_norm": "none",
}

#: FINETUNE_DEFAULTS + the ``l2s`` section (what ``speechkd-finetune`` loads configs against).
L2S_FINETUNE_DEFAULTS: Dict = merge(FINETUNE_DEFAULTS, {"l2s": dict(L2S_DEFAULTS)})


def l2s_enabled(cfg: dict) -> bool:
    """True when ``cfg`` has an ``l2s`` section with a non-zero weight."""
    sec = cfg.get("l2s") or {}
    return float(sec.get("weight") or 0.0) != 0.0


class TextStates:
    """Text-teacher hidden states per utterance id, precomputed (and cached) or encoded on the fly.

    Args:
        encoder: object with ``encode(texts, layer) -> list of (N_i, D')`` and ``dim``
            (:class:`~speechkd.models.text.TextEncoder`).
        texts: utterance id -> transcript.
        layer: hidden-state index passed to ``encoder.encode``.
        precompute: encode every transcript now (else per :meth:`get` call).
        cache_path: with ``precompute``, a ``.pt`` file to load from / save to; it is reused only if
            its key (``cache_key``) and transcripts match (the cache holds the raw states).
        target_norm: ``none`` | ``center`` | ``standardize`` the states with the mean (and per-dimension
            std) of all token states of ``texts`` (:func:`speechkd.distill.pad.normalise_targets`).

    Example::

        ts = TextStates(TextEncoder("exp/text_lm"), {"u1": "hola", "u2": "buenos días"})
        states, lengths = ts.get(["u2", "u1"])      # (2, N_max, D'), tensor([N_u2, N_u1])
    """

    def __init__(self, encoder, texts: Dict[str, str], layer: int = -1, precompute: bool = True,
                 cache_path=None, cache_key: str = "", batch_size: int = 32, max_length: int = 512,
                 target_norm: str = "none"):
        from .pad import TARGET_NORMS, mean_pairwise_cosine

        self.encoder, self.texts, self.layer = encoder, dict(texts), layer
        self.dim = int(encoder.dim)
        self.batch_size, self.max_length = batch_size, max_length
        self.states: Optional[Dict[str, Tensor]] = None
        if target_norm not in TARGET_NORMS:
            raise ConfigError(f"l2s.target_norm: unknown '{target_norm}' (choose from {', '.join(TARGET_NORMS)})")
        if target_norm != "none" and not precompute:
            raise ConfigError("l2s.target_norm needs l2s.precompute: true (the statistics are over all states)")
        if precompute:
            self.states = self._load(cache_path, cache_key)
            if self.states is None:
                self.states = self._encode_all()
                if cache_path is not None:
                    with atomic_path(cache_path, ".pt") as tmp:
                        torch.save({"key": cache_key, "texts": self.texts, "states": self.states}, tmp)
                    log.info("L2S text states of %d utterances cached in %s", len(self.states), cache_path)
            self.mean_cosine = {"raw": mean_pairwise_cosine(self.states.values())}
            if target_norm != "none":
                from .pad import normalise_targets, target_statistics

                mean, std = target_statistics(self.states.values())
                self.states = {u: normalise_targets(h, mean, std, target_norm) for u, h in self.states.items()}
                self.mean_cosine[target_norm] = mean_pairwise_cosine(self.states.values())
            log.info("L2S text states: mean pairwise cosine of token states %s",
                     ", ".join(f"{k} {v:.4f}" for k, v in self.mean_cosine.items()))

    def _load(self, cache_path, cache_key):
        if cache_path is None or not Path(cache_path).exists():
            return None
        blob = torch.load(cache_path, map_location="cpu", weights_only=True)
        if blob.get("key") != cache_key or blob.get("texts") != self.texts:
            log.info("L2S text-state cache %s is stale (other model/layer/texts): recomputing", cache_path)
            return None
        log.info("L2S text states loaded from %s", cache_path)
        return blob["states"]

    def _encode_all(self) -> Dict[str, Tensor]:
        from ..utils.progress import progress as progress_bar

        utts = list(self.texts)
        out: Dict[str, Tensor] = {}
        for i in progress_bar(range(0, len(utts), self.batch_size), desc="L2S text states", leave=False):
            chunk = utts[i:i + self.batch_size]
            for u, h in zip(chunk, self._encode([self.texts[u] for u in chunk])):
                out[u] = h.float().contiguous()
        return out

    def _encode(self, texts: Sequence[str]) -> List[Tensor]:
        return self.encoder.encode(list(texts), layer=self.layer, batch_size=self.batch_size,
                                   max_length=self.max_length)

    def get(self, utts: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """Zero-padded states (B, N_max, D') and lengths (B,) for ``utts``."""
        missing = [u for u in utts if u not in self.texts]
        if missing:
            raise ConfigError(f"L2S: no transcript for utterance '{missing[0]}'")
        if self.states is not None:
            items = [self.states[u] for u in utts]
        else:
            items = [h.float() for h in self._encode([self.texts[u] for u in utts])]
        lengths = torch.tensor([h.shape[0] for h in items], dtype=torch.long)
        out = torch.zeros(len(items), max(1, int(lengths.max())), self.dim)
        for b, h in enumerate(items):
            out[b, :h.shape[0]] = h
        return out, lengths


def student_dim(cfg: dict, init=None) -> int:
    """Hidden size of the speech model that fine-tuning will build (from ``init``'s config.yaml if given)."""
    if init is None:
        return int(cfg["model"]["encoder"]["d_model"])
    from ..utils.config import load_yaml

    path = Path(init) / "config.yaml"
    if not path.exists():
        raise ConfigError(f"{init}: no config.yaml (not a checkpoint dir)")
    model = (load_yaml(path) or {}).get("model") or {}
    enc = model.get("encoder", model) if model.get("type") == "ctc" else model
    if "d_model" not in enc:
        raise DataError(path, None, "no model d_model (needed for the L2S projection)")
    return int(enc["d_model"])


def make_l2s_hook(weight: float, loss_fn: L2SLoss, text_states: TextStates):
    """The ``extra_loss(task, batch, ctc_out)`` hook of :func:`speechkd.train.ctc.finetune_ctc`.

    ``loss_fn`` must be the module passed as ``extra_modules`` (it is used as ``task.extra``, so the
    DDP/AMP wrapping and the optimizer see the same parameters). Returns ``(λ·mse, {"l2s": mse})``.
    """

    def extra_loss(task, batch, ctc_out):
        log_probs, out_lengths, ssl_out = ctc_out
        hidden = ssl_out.last_hidden_state
        text, text_len = text_states.get(batch["utts"])
        mse = task.extra(hidden, log_probs.detach(), out_lengths, text.to(hidden.device), text_len)
        return weight * mse, {"l2s": float(mse.detach())}

    return extra_loss


def finetune_l2s(cfg: dict, train_data, valid_data=None, exp_dir="exp/ft", token_dir=None, init=None,
                 text_encoder=None) -> Path:
    """CTC fine-tuning with the Distill-L2S term (plain :func:`finetune_ctc` when λ = 0); returns
    ``exp_dir/model``. ``text_encoder`` overrides loading ``l2s.text_model`` (tests, shared encoders)."""
    cfg = merge(L2S_FINETUNE_DEFAULTS, cfg)
    sec = cfg["l2s"]
    if not l2s_enabled(cfg):
        cfg.pop("l2s")                                # plain fine-tuning, config.yaml as without L2S
        return finetune_ctc(cfg, train_data, valid_data, exp_dir, token_dir=token_dir, init=init)
    if sec["interpolation"] not in ("nearest", "linear"):
        raise ConfigError(f"l2s.interpolation must be nearest or linear, got {sec['interpolation']!r}")
    if text_encoder is None:
        if not sec.get("text_model"):
            raise ConfigError("l2s.weight is non-zero but l2s.text_model (HF encoder dir) is not set")
        from ..models.text import TextEncoder

        text_encoder = TextEncoder(sec["text_model"], layer=int(sec["layer"]))
    from ..data.datadir import read_kv

    texts = dict(read_kv(Path(train_data) / sec["text_file"]))
    exp_dir = Path(exp_dir)
    cache = sec.get("cache") or exp_dir / "l2s_text_states.pt"
    key = f"{Path(str(sec.get('text_model'))).resolve() if sec.get('text_model') else 'custom'}|layer={sec['layer']}"
    states = TextStates(text_encoder, texts, layer=int(sec["layer"]), precompute=bool(sec["precompute"]),
                        cache_path=cache if sec["precompute"] else None, cache_key=key,
                        batch_size=int(sec["batch_size"]), max_length=int(sec["max_length"]),
                        target_norm=str(sec["target_norm"]))
    d_student = student_dim(cfg, init)
    loss_fn = L2SLoss(d_student, states.dim, interpolation=sec["interpolation"])
    log.info("Distill-L2S: lambda=%g, text model %s layer %s (dim %d), student dim %d, %s interpolation",
             float(sec["weight"]), sec.get("text_model"), sec["layer"], states.dim, d_student,
             sec["interpolation"])
    hook = make_l2s_hook(float(sec["weight"]), loss_fn, states)
    return finetune_ctc(cfg, train_data, valid_data, exp_dir, token_dir=token_dir, init=init,
                        extra_loss=hook, extra_modules=loss_fn)
