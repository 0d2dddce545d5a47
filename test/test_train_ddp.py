"""Trainer under torchrun (2 CPU processes, gloo): ranks stay in sync, only rank 0 writes, resume is exact."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

SCRIPT = textwrap.dedent("""
    import os, sys, torch
    sys.path.insert(0, {test_dir!r})
    from test_train import ToyData, Toy, mse_step, loader, cfg
    from speechkd.train.trainer import Trainer
    root = sys.argv[1]
    for name, steps in (("a", 4), ("b", 2), ("b", 4)):   # b: stopped at step 2, then resumed to 4
        exp = os.path.join(root, name)
        model = Toy()
        tr = Trainer(model, mse_step, {{"lr": 0.02, "scheduler": "constant"}}, exp,
                     cfg(max_steps=steps, save_interval=2, log_interval=1))
        tr.fit(loader(ToyData(20), 4, seed=3))
        torch.save(model.state_dict(), os.path.join(exp, "rank%s_%d.pt" % (os.environ["RANK"], steps)))
""")


def _torchrun(script, root, port):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           str(script), str(root)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]


def test_ddp_two_processes(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(test_dir=str(Path(__file__).parent)))
    port = 29500 + os.getpid() % 400
    _torchrun(script, tmp_path, port)
    r0 = torch.load(tmp_path / "a" / "rank0_4.pt")
    r1 = torch.load(tmp_path / "a" / "rank1_4.pt")
    for k in r0:
        assert torch.equal(r0[k], r1[k])  # gradients were all-reduced
    log = (tmp_path / "a" / "train.log").read_text().splitlines()
    assert len(log) == 4  # one line per step, from rank 0 only
    # resume under DDP: 2 steps, then on to 4 == the uninterrupted 4 steps
    rb = torch.load(tmp_path / "b" / "rank0_4.pt")
    for k in r0:
        assert torch.equal(r0[k], rb[k])


EQUIV_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    sys.path.insert(0, {test_dir!r})
    from test_train import ToyData, Toy, mse_step, loader, cfg
    from speechkd.train.trainer import Trainer
    root, per_rank = sys.argv[1], int(sys.argv[2])
    model = Toy()
    tr = Trainer(model, mse_step, {{"lr": 0.05, "scheduler": "constant"}}, root,
                 cfg(max_steps=6, save_interval=0, log_interval=1))
    tr.fit(loader(ToyData(24), per_rank, seed=0, shuffle=False))
    if os.environ.get("RANK", "0") == "0":
        torch.save(model.state_dict(), os.path.join(root, "final.pt"))
""")


def _logged(exp, key="mse"):
    vals = []
    for line in (exp / "train.log").read_text().splitlines():
        parts = line.split()
        vals.append(float(parts[parts.index(key) + 1]))
    return vals


def test_ddp_matches_one_process_at_same_global_batch(tmp_path):
    """2 processes x 2 utterances == 1 process x 4 utterances: same logged loss curve, same final weights."""
    script = tmp_path / "equiv.py"
    script.write_text(EQUIV_SCRIPT.format(test_dir=str(Path(__file__).parent)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one"), "4"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr[-3000:]
    port = 29100 + os.getpid() % 300
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        str(port), str(script), str(tmp_path / "two"), "2"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _logged(tmp_path / "one"), _logged(tmp_path / "two")
    assert len(a) == len(b) == 6 and a[-1] < a[0]
    assert torch.allclose(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-6), (a, b)
    wa = torch.load(tmp_path / "one" / "final.pt")
    wb = torch.load(tmp_path / "two" / "final.pt")
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k
