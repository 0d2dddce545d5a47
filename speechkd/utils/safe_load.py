"""Loading ``.pt`` files without running code from them.

``torch.load(weights_only=False)`` unpickles arbitrary objects: a checkpoint downloaded from the internet
can run any command while it is read. Everything here loads with ``weights_only=True`` (tensors, plain
containers, numbers and strings), plus an explicit allow-list of harmless classes per kind of file
(e.g. ``argparse.Namespace`` for fairseq configs). A file that needs anything else is refused with a
one-line :class:`~speechkd.utils.errors.ConfigError` naming the file and the offending global, unless the
caller opts in with ``trust=True`` (``--trust-checkpoint`` on the CLIs) for a legacy pickle it trusts::

    state = safe_torch_load("exp/model/model.pt")
    ckpt = safe_torch_load("hubert_base_ls960.pt", allowed=fairseq_safe_globals())
    ckpt = safe_torch_load("my_old.pt", trust=True)        # full unpickling: trusted files only
    ckpt = safe_torch_load("xlsr_53_56k.pt", allowed=fairseq_safe_globals(), mmap=True)  # tensors stay on disk

``mmap=True`` maps a file in torch's zip format instead of reading it: tensors are views of the file
(copy-on-write), and their bytes are read from disk only when touched, so entries that are never used (e.g. a
fairseq ``last_optimizer_state``) cost no memory. The legacy (pre-1.6, non-zip) format cannot be mapped: it is
read whole, as without ``mmap``, and that is logged. Which globals may be unpickled does not change.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import List, Sequence

from .errors import ConfigError

log = logging.getLogger("speechkd")

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format since 1.6 is a zip archive
TRUST_HINT = "re-run with --trust-checkpoint (trust=True) only if you trust its source"


def numpy_safe_globals() -> List:
    """numpy arrays, dtypes and scalars (their reconstruction calls build data, they run no code)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return []
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    out: List = [np.ndarray, np.dtype]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1 and numpy 2 pickles
        out += [(multiarray._reconstruct, f"{mod}._reconstruct"), (multiarray.scalar, f"{mod}.scalar")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return out


def omegaconf_safe_globals() -> List:
    """omegaconf DictConfig/ListConfig and their node/metadata classes, when omegaconf is installed."""
    try:
        import omegaconf
        from omegaconf import base, nodes
    except ImportError:
        return []
    import collections
    import typing

    out: List = [omegaconf.DictConfig, omegaconf.ListConfig, base.ContainerMetadata, base.Metadata,
                 typing.Any, dict, list, tuple, int, float, str, bool, bytes, collections.defaultdict]
    for name in dir(nodes):
        obj = getattr(nodes, name)
        if isinstance(obj, type) and issubclass(obj, base.Node) and obj.__module__.startswith("omegaconf"):
            out.append(obj)
    return out


def offending_global(exc: BaseException) -> str:
    """The ``module.name`` global that a weights-only UnpicklingError complains about ('?' if none)."""
    m = re.search(r"GLOBAL (\S+)", str(exc))
    return m.group(1) if m else "?"


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def is_zip_torch_file(path) -> bool:
    """Whether ``path`` is in torch's zip format (the one ``torch.load(mmap=True)`` can map)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    except OSError:
        return False


def safe_torch_load(path, *, trust: bool = False, allowed: Sequence = (), map_location="cpu",
                    hint: str = TRUST_HINT, mmap: bool = False):
    """``torch.load(path, weights_only=True)`` with ``allowed`` extra globals; full unpickling if ``trust``.

    ``mmap=True`` memory-maps a zip-format file (tensors are read from disk when touched); a legacy
    non-zip file is read whole instead (logged). Errors are one-line ConfigErrors: a refused global names
    the file and the global, a missing module (only possible with ``trust``) names the module, a corrupt
    file gives torch's first line.
    """
    import pickle

    import torch

    path = Path(path)
    if mmap and not is_zip_torch_file(path):
        if path.is_file():
            log.info("%s: legacy (non-zip) torch file: it cannot be memory-mapped, reading it whole", path)
        mmap = False
    kw = {"map_location": map_location, "mmap": True} if mmap else {"map_location": map_location}
    try:
        if trust:
            return torch.load(path, weights_only=False, **kw)
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, weights_only=True, **kw)
    except ModuleNotFoundError as e:
        raise ConfigError(f"{path}: unpickling needs module '{e.name}' (install it to load this file)") from None
    except pickle.UnpicklingError as e:
        if "GLOBAL" in str(e):
            raise ConfigError(f"{path}: refused to unpickle global '{offending_global(e)}' (not allowed in a "
                              f"weights-only load: the file could run code); {hint}") from None
        raise ConfigError(f"{path}: cannot read file: {_first_line(e)}") from None
    except Exception as e:  # corrupt or truncated file
        raise ConfigError(f"{path}: cannot read file: {_first_line(e)}") from None

