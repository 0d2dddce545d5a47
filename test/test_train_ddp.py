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
