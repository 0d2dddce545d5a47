"""Kaldi-compatible filterbank (Fbank) and MFCC features in pure torch: batched, device-agnostic.

The maths follows Kaldi's ``compute-fbank-feats`` / ``compute-mfcc-feats`` (and kaldi-native-fbank) step by
step, so that features match Kaldi to ~1e-4 with ``dither=0``:

1. framing: ``frame_length_ms``/``frame_shift_ms`` windows; ``snip_edges=True`` keeps only whole frames
   inside the signal, ``False`` centres frames on multiples of the shift and reflects at the edges;
2. optional dither (Gaussian, per frame sample, as Kaldi; seeded through ``generator``);
3. DC removal (per frame mean), raw log-energy (before pre-emphasis/window) when ``use_energy``;
4. pre-emphasis ``x[i] -= p * x[i-1]`` (``x[0] -= p * x[0]``); window (povey/hamming/hanning/rectangular);
5. zero-padding to the next power of two, power spectrum via ``torch.fft.rfft``;
6. triangular mel banks exactly as Kaldi (mel = 1127 ln(1 + f/700), ``low_freq`` 20 Hz, ``high_freq <= 0``
   meaning Nyquist + ``high_freq``, no VTLN), ``log(max(x, eps))`` with ``eps`` = float32 epsilon;
7. MFCC: DCT-II with orthonormal scaling (Kaldi's ``ComputeDctMatrix``), first ``num_ceps`` rows,
   cepstral lifter ``1 + Q/2 sin(pi i / Q)``, and c0 replaced by the raw log-energy (``use_energy=True``).

**Input scale.** Inputs are float waveforms in [-1, 1] (what :func:`speechkd.data.audio.load_audio`
returns). Kaldi reads int16 samples, so the waveform is multiplied by 32768 internally; outputs therefore
equal Kaldi's on the same audio (log-mel values around 5..20 rather than -5..5).

Example::

    >>> wav = torch.randn(2, 16000) * 0.1                 # (B, S), 1 s at 16 kHz
    >>> fbank(wav).shape                                  # (B, T, F)
    torch.Size([2, 98, 80])
    >>> mfcc(wav[0]).shape                                # (T, num_ceps)
    torch.Size([98, 13])
    >>> ext = FbankExtractor(num_mel_bins=80)
    >>> feats, flen = ext(wav, torch.tensor([16000, 8000]))   # padded tail frames are zero
    >>> flen
    tensor([98, 48])

Mel matrices, windows and DCT matrices are cached per (options, device, dtype).
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ["fbank", "mfcc", "num_frames", "mel_banks", "FbankExtractor", "MfccExtractor", "INT16_SCALE"]

INT16_SCALE = 32768.0
EPSILON = float(torch.finfo(torch.float32).eps)  # Kaldi's std::numeric_limits<float>::epsilon()


# ---------------------------------------------------------------------------------------------- helpers
def _window_sizes(sample_rate: float, frame_length_ms: float, frame_shift_ms: float) -> Tuple[int, int]:
    size = int(sample_rate * 0.001 * frame_length_ms)
    shift = int(sample_rate * 0.001 * frame_shift_ms)
    if size < 2 or shift < 1:
        raise ValueError(f"frame too short: {frame_length_ms} ms at {sample_rate} Hz")
    return size, shift


def _padded_size(window_size: int) -> int:
    return 1 << (window_size - 1).bit_length()


def num_frames(num_samples, sample_rate: float = 16000, frame_length_ms: float = 25.0,
               frame_shift_ms: float = 10.0, snip_edges: bool = True):
    """Number of frames Kaldi produces for ``num_samples`` samples (int or integer tensor).

    >>> num_frames(16000)
    98
    >>> num_frames(torch.tensor([16000, 399, 400]))
    tensor([98,  0,  1])
    """
    size, shift = _window_sizes(sample_rate, frame_length_ms, frame_shift_ms)
    if isinstance(num_samples, Tensor):
        n = num_samples.long()
        if snip_edges:
            return torch.where(n >= size, 1 + torch.div(n - size, shift, rounding_mode="floor"),
                               torch.zeros_like(n))
        return torch.div(n + shift // 2, shift, rounding_mode="floor")
    n = int(num_samples)
    if snip_edges:
        return 1 + (n - size) // shift if n >= size else 0
    return (n + shift // 2) // shift


def mel_scale(freq):
    """Kaldi's mel scale: ``1127 ln(1 + f / 700)``."""
    if isinstance(freq, Tensor):
        return 1127.0 * torch.log1p(freq / 700.0)
    return 1127.0 * math.log1p(freq / 700.0)


@functools.lru_cache(maxsize=64)
def _mel_banks_cached(num_bins: int, padded_size: int, sample_rate: float, low_freq: float,
                      high_freq: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    nyquist = 0.5 * sample_rate
    if high_freq <= 0:
        high_freq = nyquist + high_freq
    if not (0 <= low_freq < high_freq <= nyquist):
        raise ValueError(f"bad mel range: low_freq={low_freq}, high_freq={high_freq}, nyquist={nyquist}")
    num_fft_bins = padded_size // 2
    bin_width = sample_rate / padded_size
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    mel = mel_scale(bin_width * torch.arange(num_fft_bins, dtype=torch.float64)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    w = torch.where(mel <= center, up, down)
    w = torch.where((mel > left) & (mel < right), w, torch.zeros_like(w))
    # the Nyquist bin (index padded/2) never gets weight in Kaldi
    w = torch.cat([w, torch.zeros(num_bins, 1, dtype=w.dtype)], dim=1)
    return w.t().contiguous().to(device=device, dtype=dtype)  # (padded/2 + 1, num_bins)


def mel_banks(num_bins: int, padded_size: int, sample_rate: float = 16000, low_freq: float = 20.0,
              high_freq: float = 0.0, device=None, dtype=torch.float32) -> Tensor:
    """Kaldi triangular mel filters as a ``(padded_size // 2 + 1, num_bins)`` matrix (power spectrum → mel)."""
    return _mel_banks_cached(int(num_bins), int(padded_size), float(sample_rate), float(low_freq),
                             float(high_freq), torch.device(device or "cpu"), dtype)


@functools.lru_cache(maxsize=32)
def _window_cached(kind: str, size: int, device: torch.device, dtype: torch.dtype,
                   blackman_coeff: float = 0.42) -> Tensor:
    i = torch.arange(size, dtype=torch.float64)
    a = 2 * math.pi / (size - 1)
    if kind == "povey":
        w = (0.5 - 0.5 * torch.cos(a * i)).pow(0.85)
    elif kind == "hamming":
        w = 0.54 - 0.46 * torch.cos(a * i)
    elif kind == "hanning":
        w = 0.5 - 0.5 * torch.cos(a * i)
    elif kind == "rectangular":
        w = torch.ones(size, dtype=torch.float64)
    elif kind == "blackman":
        w = blackman_coeff - 0.5 * torch.cos(a * i) + (0.5 - blackman_coeff) * torch.cos(2 * a * i)
    else:
        raise ValueError(f"unknown window '{kind}' (povey, hamming, hanning, rectangular, blackman)")
    return w.to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=32)
def _dct_lifter_cached(num_ceps: int, num_bins: int, cepstral_lifter: float, device: torch.device,
                       dtype: torch.dtype) -> Tensor:
    if num_ceps > num_bins:
        raise ValueError(f"num_ceps ({num_ceps}) must be <= num_mel_bins ({num_bins})")
    n = torch.arange(num_bins, dtype=torch.float64)
    k = torch.arange(num_ceps, dtype=torch.float64).unsqueeze(1)
    dct = math.sqrt(2.0 / num_bins) * torch.cos(math.pi / num_bins * (n + 0.5) * k)
    dct[0] = math.sqrt(1.0 / num_bins)
    if cepstral_lifter != 0:
        lifter = 1.0 + 0.5 * cepstral_lifter * torch.sin(math.pi * torch.arange(num_ceps, dtype=torch.float64)
                                                          / cepstral_lifter)
        dct = dct * lifter.unsqueeze(1)
    return dct.t().contiguous().to(device=device, dtype=dtype)  # (num_bins, num_ceps)


def _frame_indices(lengths: Tensor, n_frames: int, size: int, shift: int, snip_edges: bool) -> Tensor:
    """Sample indices (B, T, size) for each frame, reflecting at each row's edges (snip_edges=False)."""
    dev = lengths.device
    start = torch.arange(n_frames, device=dev) * shift
    if not snip_edges:
        start = start + shift // 2 - size // 2
    idx = start.unsqueeze(1) + torch.arange(size, device=dev)  # (T, W)
    idx = idx.unsqueeze(0).expand(lengths.numel(), -1, -1)
    L = lengths.view(-1, 1, 1).long()
    idx = torch.where(idx < 0, -idx - 1, idx)
    idx = torch.where(idx >= L, 2 * L - 1 - idx, idx)
    return idx.clamp(min=0)


def _frames(wav: Tensor, lengths: Optional[Tensor], size: int, shift: int, snip_edges: bool) -> Tensor:
    """Cut (B, S) into (B, T, size) frames (T from the longest row)."""
    S = wav.shape[-1]
    if snip_edges:
        T = 1 + (S - size) // shift if S >= size else 0
        if T == 0:
            return wav.new_zeros(wav.shape[0], 0, size)
        return wav.unfold(-1, size, shift)[:, :T]
    T = (S + shift // 2) // shift
    if lengths is None:
        lengths = torch.full((wav.shape[0],), S, device=wav.device, dtype=torch.long)
    if T == 0:
        return wav.new_zeros(wav.shape[0], 0, size)
    idx = _frame_indices(lengths.to(wav.device), T, size, shift, False)
    return torch.gather(wav.unsqueeze(1).expand(-1, T, -1), 2, idx)


def _check_wav(wav: Tensor) -> Tuple[Tensor, bool]:
    if not isinstance(wav, Tensor):
        raise TypeError(f"expected a torch.Tensor waveform, got {type(wav).__name__}")
    if wav.dim() not in (1, 2):
        raise ValueError(f"waveform must be (S,) or (B, S), got shape {tuple(wav.shape)}")
    squeeze = wav.dim() == 1
    wav = wav.unsqueeze(0) if squeeze else wav
    if not wav.is_floating_point():
        wav = wav.float()
    return wav, squeeze


def _log_mel_and_energy(wav: Tensor, lengths: Optional[Tensor], sample_rate: float, num_mel_bins: int,
                        frame_length_ms: float, frame_shift_ms: float, dither: float, preemphasis: float,
                        window: str, snip_edges: bool, low_freq: float, high_freq: float,
                        remove_dc_offset: bool, energy: bool, generator: Optional[torch.Generator]
                        ) -> Tuple[Tensor, Optional[Tensor]]:
    size, shift = _window_sizes(sample_rate, frame_length_ms, frame_shift_ms)
    # Work on the [-1, 1] waveform and scale the power by 32768**2 == 2**30 at the end: multiplying by a
    # power of two is exact in floating point, so this equals Kaldi's int16-scale arithmetic.
    x = _frames(wav, lengths, size, shift, snip_edges)  # (B, T, W) (a strided view when snip_edges)
    B, T, W = x.shape
    if T == 0:  # shorter than one frame
        return x.new_zeros(B, 0, num_mel_bins), (x.new_zeros(B, 0) if energy else None)
    if dither != 0.0:  # dither is given in int16 units
        x = x + (dither / INT16_SCALE) * torch.randn(x.shape, generator=generator, device=x.device,
                                                      dtype=x.dtype)
    mean = x.mean(dim=-1, keepdim=True) if remove_dc_offset else None
    log_energy = None
    if energy:
        xc = x - mean if mean is not None else x
        log_energy = (xc.pow(2).sum(-1) * INT16_SCALE ** 2).clamp(min=EPSILON).log()
    # DC removal and pre-emphasis are linear and commute: pre(x - m) = pre(x) - (1 - p) m, so both are
    # done in two passes written straight into the zero-padded FFT buffer.
    padded = _padded_size(size)
    buf = x.new_zeros(B, T, padded)
    frame = buf[..., :W]
    if preemphasis != 0.0:
        torch.sub(x[..., 1:], x[..., :-1], alpha=preemphasis, out=buf[..., 1:W])
        buf[..., 0] = x[..., 0] * (1.0 - preemphasis)
    else:
        frame.copy_(x)
    if mean is not None:
        frame.sub_(mean * (1.0 - preemphasis))
    frame.mul_(_window_cached(window, size, x.device, x.dtype))
    spec = torch.view_as_real(torch.fft.rfft(buf))  # (B, T, padded/2 + 1, 2)
    power = spec.square().sum(-1)
    mel = power @ mel_banks(num_mel_bins, padded, sample_rate, low_freq, high_freq, x.device, x.dtype)
    return (mel * INT16_SCALE ** 2).clamp_(min=EPSILON).log_(), log_energy


def _zero_tail(feats: Tensor, frame_lengths: Tensor) -> Tensor:
    mask = torch.arange(feats.shape[1], device=feats.device).unsqueeze(0) < frame_lengths.unsqueeze(1)
    return feats * mask.unsqueeze(-1).to(feats.dtype)


# ---------------------------------------------------------------------------------------------- public
def fbank(wav: Tensor, sample_rate: float = 16000, num_mel_bins: int = 80, frame_length_ms: float = 25.0,
          frame_shift_ms: float = 10.0, dither: float = 0.0, preemphasis: float = 0.97,
          window: str = "povey", snip_edges: bool = True, low_freq: float = 20.0, high_freq: float = 0.0,
          use_energy: bool = False, remove_dc_offset: bool = True,
          generator: Optional[torch.Generator] = None, lengths: Optional[Tensor] = None) -> Tensor:
    """Kaldi log-mel filterbank features.

    Args:
        wav: (S,) or (B, S) float waveform in [-1, 1] (scaled by 32768 internally, see module doc).
        generator: optional ``torch.Generator`` for reproducible dither (same device as ``wav``).
        lengths: optional (B,) valid sample counts; frames past each row's end are zeroed (and with
            ``snip_edges=False`` the edge reflection uses each row's own length).

    Returns:
        (T, F) or (B, T, F) float features, F = ``num_mel_bins`` (+1, energy first, if ``use_energy``).
    """
    x, squeeze = _check_wav(wav)
    mel, log_energy = _log_mel_and_energy(x, lengths, sample_rate, num_mel_bins, frame_length_ms,
                                          frame_shift_ms, dither, preemphasis, window, snip_edges,
                                          low_freq, high_freq, remove_dc_offset, use_energy, generator)
    feats = torch.cat([log_energy.unsqueeze(-1), mel], dim=-1) if use_energy else mel
    if lengths is not None:
        feats = _zero_tail(feats, num_frames(lengths.to(feats.device), sample_rate, frame_length_ms,
                                             frame_shift_ms, snip_edges))
    return feats[0] if squeeze else feats


def mfcc(wav: Tensor, sample_rate: float = 16000, num_ceps: int = 13, num_mel_bins: int = 23,
         frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0, dither: float = 0.0,
         preemphasis: float = 0.97, window: str = "povey", snip_edges: bool = True, low_freq: float = 20.0,
         high_freq: float = 0.0, use_energy: bool = True, cepstral_lifter: float = 22.0,
         remove_dc_offset: bool = True, generator: Optional[torch.Generator] = None,
         lengths: Optional[Tensor] = None) -> Tensor:
    """Kaldi MFCC features (defaults as ``compute-mfcc-feats``: 23 mel bins, 13 ceps, lifter 22, energy c0).

    Args and shapes as :func:`fbank`; returns (T, num_ceps) or (B, T, num_ceps).
    """
    x, squeeze = _check_wav(wav)
    mel, log_energy = _log_mel_and_energy(x, lengths, sample_rate, num_mel_bins, frame_length_ms,
                                          frame_shift_ms, dither, preemphasis, window, snip_edges,
                                          low_freq, high_freq, remove_dc_offset, use_energy, generator)
    feats = mel @ _dct_lifter_cached(int(num_ceps), int(num_mel_bins), float(cepstral_lifter),
                                     mel.device, mel.dtype)
    if use_energy:
        feats = torch.cat([log_energy.unsqueeze(-1), feats[..., 1:]], dim=-1)
    if lengths is not None:
        feats = _zero_tail(feats, num_frames(lengths.to(feats.device), sample_rate, frame_length_ms,
                                             frame_shift_ms, snip_edges))
    return feats[0] if squeeze else feats


class FbankExtractor(nn.Module):
    """On-the-fly Kaldi fbank as a module (no parameters; follows the input's device/dtype).

    ``forward(wav (B, S), lengths (B,) or None) -> (feats (B, T, F), frame_lengths (B,))``; frames past
    each utterance's end are zero. Options are those of :func:`fbank`. Dither (if any) is only applied in
    training mode.

    >>> ext = FbankExtractor(num_mel_bins=40)
    >>> feats, flen = ext(torch.zeros(3, 4000).uniform_(-0.1, 0.1), torch.tensor([4000, 3000, 400]))
    >>> feats.shape, flen.tolist()
    (torch.Size([3, 23, 40]), [23, 17, 1])
    """

    _fn = staticmethod(fbank)

    def __init__(self, sample_rate: float = 16000, num_mel_bins: int = 80, frame_length_ms: float = 25.0,
                 frame_shift_ms: float = 10.0, dither: float = 0.0, preemphasis: float = 0.97,
                 window: str = "povey", snip_edges: bool = True, low_freq: float = 20.0,
                 high_freq: float = 0.0, use_energy: bool = False, **extra):
        super().__init__()
        self.opts = dict(sample_rate=sample_rate, num_mel_bins=num_mel_bins, frame_length_ms=frame_length_ms,
                         frame_shift_ms=frame_shift_ms, dither=dither, preemphasis=preemphasis, window=window,
                         snip_edges=snip_edges, low_freq=low_freq, high_freq=high_freq, use_energy=use_energy,
                         **extra)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.opts.items())

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Frame counts for sample counts ``lengths`` (B,)."""
        o = self.opts
        return num_frames(lengths, o["sample_rate"], o["frame_length_ms"], o["frame_shift_ms"], o["snip_edges"])

    def forward(self, wav: Tensor, lengths: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        if wav.dim() != 2:
            raise ValueError(f"expected (B, S) waveform, got shape {tuple(wav.shape)}")
        if lengths is None:
            lengths = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.long, device=wav.device)
        opts = dict(self.opts)
        if not self.training:
            opts["dither"] = 0.0
        feats = self._fn(wav, lengths=lengths, **opts)
        return feats, self.output_lengths(lengths.to(wav.device))


class MfccExtractor(FbankExtractor):
    """Like :class:`FbankExtractor` but computing :func:`mfcc` (defaults: 23 bins, 13 ceps, energy c0)."""

    _fn = staticmethod(mfcc)

    def __init__(self, sample_rate: float = 16000, num_mel_bins: int = 23, num_ceps: int = 13,
                 use_energy: bool = True, cepstral_lifter: float = 22.0, **kw):
        super().__init__(sample_rate=sample_rate, num_mel_bins=num_mel_bins, use_energy=use_energy,
                         num_ceps=num_ceps, cepstral_lifter=cepstral_lifter, **kw)
