"""Progress bars only on terminals: logs written to files carry the INFO lines, no tqdm '\\r' frames."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from speechkd.utils.progress import is_terminal, progress

TEST_DIR = Path(__file__).resolve().parent


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_bar_only_on_a_terminal():
    f = io.StringIO()
    assert list(progress(range(5), desc="x", file=f)) == list(range(5))
    assert f.getvalue() == "" and not is_terminal(f)
    tty = FakeTTY()
    assert list(progress(range(5), desc="x", file=tty, mininterval=0)) == list(range(5))
    assert "\r" in tty.getvalue() and "5/5" in tty.getvalue()
    tty = FakeTTY()
    list(progress(range(5), file=tty, progress=False))  # explicit off, even on a terminal
    list(progress(range(5), file=tty, disable=True))
    assert tty.getvalue() == ""
    bar = progress(total=3, file=io.StringIO())  # a disabled bar still takes the bar calls
    bar.update(1), bar.set_postfix(loss=1.0, refresh=False), bar.close()


def test_training_log_to_file_has_no_progress_frames(tmp_path):
    script = f"""
import sys
sys.path.insert(0, {str(TEST_DIR)!r})
from speechkd.utils.cli import setup_logging
from speechkd.train.trainer import Trainer
from test_train import ToyData, Toy, cfg, loader, mse_step
setup_logging()
Trainer(Toy(), mse_step, {{"lr": 0.02}}, {str(tmp_path / "exp")!r},
        cfg(max_steps=20, log_interval=5, progress=True)).fit(loader(ToyData(16), 4))
"""
    err = tmp_path / "stderr.log"
    with open(err, "w") as f:
        r = subprocess.run([sys.executable, "-c", script], stderr=f, stdout=subprocess.DEVNULL,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    text = err.read_text()
    assert r.returncode == 0, text
    assert "\r" not in text
    assert sum("[train]" in ln for ln in text.splitlines()) == 4  # one INFO line per log_interval
