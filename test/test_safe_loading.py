"""Safe loading: checkpoints, train states and fairseq files are read with ``weights_only=True``; a
hostile pickle is refused (one line naming the file and the global, no code run) unless trusted."""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechkd.models.checkpoint import load_checkpoint, load_train_state
from speechkd.train.rng import get_rng_state, set_rng_state
from speechkd.utils.errors import ConfigError

transformers = pytest.importorskip("transformers")

from test_convert_fairseq import _fairseq_model_cfg, _hf_cfg, _perturbed, hf_to_fairseq  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EVIL_GLOBAL = f"{os.system.__module__}.system"  # posix.system on Linux


class Hostile:
    """Unpickling this runs ``touch marker`` (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _fairseq_state():
    ref = _perturbed(transformers.Wav2Vec2Model(_hf_cfg(False)))
    return ref, hf_to_fairseq(ref.state_dict(), False)


def _legit_args(tmp_path) -> Path:
    """An old-style fairseq checkpoint: config in an argparse Namespace ``args``."""
    _, state = _fairseq_state()
    args = {k: v for k, v in _fairseq_model_cfg(False, "wav2vec2").items() if k != "_name"}
    path = tmp_path / "legit.pt"
    torch.save({"args": argparse.Namespace(arch="wav2vec2", **args), "model": state,
                "extra_state": {"best": np.float64(1.25), "lr": np.array([1e-4])},
                "optimizer_history": [{"num_updates": 10}]}, path)
    return path


def _hostile(tmp_path, marker) -> Path:
    """A valid fairseq checkpoint that also carries a code-running payload."""
    _, state = _fairseq_state()
    path = tmp_path / "hostile.pt"
    torch.save({"cfg": {"model": _fairseq_model_cfg(False, "wav2vec2")}, "model": state,
                "extra_state": Hostile(marker)}, path)
    assert not marker.exists()
    return path


def _assert_refusal(msg: str, path: Path):
    assert "\n" not in msg.strip()
    assert str(path) in msg and EVIL_GLOBAL in msg and "--trust-checkpoint" in msg


def test_hostile_fairseq_refused_then_trusted(tmp_path):
    from speechkd.models.convert.import_fairseq import import_fairseq, load_fairseq_file

    marker = tmp_path / "pwned"
    path = _hostile(tmp_path, marker)
    with pytest.raises(ConfigError) as e:
        import_fairseq(path)
    _assert_refusal(str(e.value), path)
    assert not marker.exists()
    load_fairseq_file(path, trust=True)  # explicit opt-in: the legacy pickle is fully unpickled
    assert marker.exists()


def test_hostile_fairseq_cli(tmp_path):
    marker = tmp_path / "pwned"
    path = _hostile(tmp_path, marker)
    cmd = [sys.executable, "-m", "speechkd.bin.import_checkpoint", "--src", str(path), "--out"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd + [str(tmp_path / "t1")], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 1, r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("ERROR")]
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    _assert_refusal(err[0], path)
    assert not marker.exists() and not (tmp_path / "t1").exists()
    r = subprocess.run(cmd + [str(tmp_path / "t2"), "--trust-checkpoint"], capture_output=True, text=True,
                       cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    assert marker.exists() and (tmp_path / "t2" / "model.pt").exists()


def test_legit_namespace_fairseq_imports_without_trust(tmp_path):
    from speechkd.bin.import_checkpoint import import_checkpoint
    from speechkd.models.convert.import_fairseq import import_fairseq

    path = _legit_args(tmp_path)
    model = import_fairseq(path)
    trusted = import_fairseq(path, trust=True)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), trusted.state_dict().items()):
        assert k == k2 and (k.endswith("masked_spec_embed") or torch.equal(v, v2)), k
    import_checkpoint(path, tmp_path / "teacher")
    loaded, config = load_checkpoint(tmp_path / "teacher")
    assert config["source"]["format"] == "fairseq"


def test_omegaconf_cfg_loads_without_trust(tmp_path):
    omegaconf = pytest.importorskip("omegaconf")
    from speechkd.models.convert.import_fairseq import import_fairseq

    _, state = _fairseq_state()
    cfg = omegaconf.OmegaConf.create({"model": _fairseq_model_cfg(False, "wav2vec2"), "common": {"seed": 1}})
    torch.save({"cfg": cfg, "model": state}, tmp_path / "omega.pt")
    import_fairseq(tmp_path / "omega.pt")


def test_train_state_is_weights_only_and_rng_roundtrip(tmp_path):
    from test_train import _run

    _run(tmp_path / "exp", 3)
    st_path = tmp_path / "exp" / "checkpoints" / "step_3" / "train_state.pt"
    st = torch.load(st_path, weights_only=True)  # no numpy arrays or pickled objects in it
    assert isinstance(st["rng"]["numpy"]["keys"], torch.Tensor)
    assert load_train_state(st_path.parent)["step"] == 3

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in the numpy state
    random.gauss(0, 1)
    saved = get_rng_state()
    torch.save(saved, tmp_path / "rng.pt")
    first = (random.random(), random.gauss(0, 1), np.random.standard_normal(4).tolist(), torch.rand(3))
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (random.random(), random.gauss(0, 1), np.random.standard_normal(4).tolist(), torch.rand(3))
    assert first[:3] == again[:3] and torch.equal(first[3], again[3])


def test_legacy_train_state_with_numpy_still_loads(tmp_path):
    """train_state.pt written before this change (tuple + numpy array RNG states) still resumes."""
    d = tmp_path / "ck"
    d.mkdir()
    random.seed(5), np.random.seed(6)
    legacy = {"step": 1, "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                                 "torch": torch.get_rng_state()}}
    torch.save(legacy, d / "train_state.pt")
    want = (random.random(), np.random.random())
    random.seed(0), np.random.seed(0)
    set_rng_state(load_train_state(d)["rng"])
    assert (random.random(), np.random.random()) == want


def test_hostile_own_checkpoint_refused(tmp_path):
    from speechkd.models.checkpoint import save_checkpoint
    from speechkd.models.ssl import mini_ssl

    marker = tmp_path / "pwned"
    save_checkpoint(tmp_path / "ck", mini_ssl(), train_state={"step": 1})
    torch.save({"step": 1, "x": Hostile(marker)}, tmp_path / "ck" / "train_state.pt")
    with pytest.raises(ConfigError) as e:
        load_train_state(tmp_path / "ck")
    _assert_refusal(str(e.value), tmp_path / "ck" / "train_state.pt")
    torch.save({"w": Hostile(marker)}, tmp_path / "ck" / "model.pt")
    with pytest.raises(ConfigError) as e:
        load_checkpoint(tmp_path / "ck")
    _assert_refusal(str(e.value), tmp_path / "ck" / "model.pt")
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_mmap_load_keeps_the_allow_list(tmp_path, legacy):
    """``mmap=True`` (zip files mapped, legacy ones read whole) refuses the same globals and loads the same
    content as a plain load."""
    from speechkd.models.convert.import_fairseq import fairseq_safe_globals
    from speechkd.utils.safe_load import safe_torch_load

    kw = {"_use_new_zipfile_serialization": False} if legacy else {}
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pt"
    torch.save({"w": torch.ones(3), "x": Hostile(marker)}, hostile, **kw)
    with pytest.raises(ConfigError) as e:
        safe_torch_load(hostile, allowed=fairseq_safe_globals(), mmap=True)
    _assert_refusal(str(e.value), hostile)
    assert not marker.exists()
    legit = tmp_path / "legit.pt"
    torch.save({"args": argparse.Namespace(arch="wav2vec2"), "w": torch.arange(6.0), "n": np.float64(2.5)}, legit,
               **kw)
    plain = safe_torch_load(legit, allowed=fairseq_safe_globals())
    mapped = safe_torch_load(legit, allowed=fairseq_safe_globals(), mmap=True)
    assert mapped["args"] == plain["args"] and mapped["n"] == plain["n"] and torch.equal(mapped["w"], plain["w"])
    with pytest.raises(ConfigError, match="missing.pt"):
        safe_torch_load(tmp_path / "missing.pt", mmap=True)
    (tmp_path / "trunc.pt").write_bytes(legit.read_bytes()[:40])
    with pytest.raises(ConfigError, match="trunc.pt: cannot read file"):
        safe_torch_load(tmp_path / "trunc.pt", mmap=True)
    safe_torch_load(hostile, mmap=True, trust=True)  # explicit opt-in: unpickled fully, as without mmap
    assert marker.exists()
