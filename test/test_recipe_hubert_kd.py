"""Smoke test of egs/mini_espeak/hubert_kd: ./run.sh --conf_tag smoke in a copy of the recipe folder
(the smoke zoo's ssl_en_cnn teacher with a thin CNN, an S&W student with L_disc, an Fbank student through stages A and B, CTC
fine-tuning on two labelled sizes, decode, score, RESULTS_smoke.md)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from speechkd.utils.config import load_config

from recipe_runner import assert_rescored, copy_recipe, log_values

ROOT = Path(__file__).resolve().parents[1]


def _train_losses(log: Path, key: str = "loss"):
    vals = []
    for line in log.read_text().splitlines():
        if "[train]" in line:
            parts = line.split()
            vals.append(float(parts[parts.index(key) + 1]))
    return vals


@pytest.mark.skipif(shutil.which("espeak-ng") is None and not (ROOT / "tools" / "venv").exists(),
                    reason="needs espeak-ng")
def test_hubert_kd_smoke(tmp_path, smoke_zoo):
    rec = copy_recipe("mini_espeak/hubert_kd", tmp_path)
    env = dict(os.environ, SPEECHKD_ROOT=str(ROOT), cmd_backend="local", SPEECHKD_ZOO=str(smoke_zoo))
    cmd = ["bash", "run.sh", "--conf_tag", "smoke", "--students", "sw_disc fb_disc", "--seeds", "1",
           "--ft_sizes", "100 2"]
    p = subprocess.run(cmd, cwd=rec, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=1500)
    assert p.returncode == 0, p.stdout[-4000:]
    # teacher: the zoo's ssl_en_cnn, linked (no private teacher trained); stage A front-end, students:
    # checkpoints of type ssl without heads
    teacher = rec / "exp/teacher/model"
    assert teacher.is_symlink() and teacher.resolve() == (Path(smoke_zoo) / "ssl_en_cnn").resolve()
    assert not (rec / "exp/teacher/train.log").exists() and not (rec / "exp/teacher/pretrain.log").exists()
    assert (rec / "exp/teacher/model/kmeans.pt").exists()
    fe = _train_losses(rec / "exp/fb_disc_frontend/seed1/train.log", "fe_l1")
    assert fe[-1] < fe[0]                                            # stage A learns the CNN output
    for s in ("sw_disc", "fb_disc"):
        losses = _train_losses(rec / f"exp/{s}/seed1/train.log")
        assert losses[-1] < losses[0], (s, losses)
        assert "kl" in (rec / f"exp/{s}/seed1/train.log").read_text()
        keys = torch.load(rec / f"exp/{s}/seed1/model/model.pt", weights_only=True)
        assert keys and not any(k.startswith(("head", "heads", "distiller", "loss")) for k in keys)
    assert (rec / "exp/fb_disc/seed1/model/cmvn.npz").exists()
    # fine-tuned, decoded and scored: the CTC loss fell, and an independent scorer (jiwer) agrees with
    # every score.json (CER and WER, counts over the whole test set)
    # the from-scratch row: S&W's architecture (from sw_disc), random weights, its CNN trained too
    scratch_log = (rec / "exp/scratch/seed1/ft100/train.log").read_text()
    assert "random weights (finetune.init_weights: false)" in scratch_log
    assert load_config(rec / "exp/scratch/seed1/ft100/config.yaml")["model"]["freeze_frontend"] is False
    for d in ("exp/ft_teacher/seed1", "exp/sw_disc/seed1", "exp/fb_disc/seed1", "exp/scratch/seed1"):
        for size in ("100", "2"):
            errs = assert_rescored(rec / d / f"ft{size}/decode_test/score.json", rec)
            assert {"char", "word"} <= set(errs)
        ctc = _train_losses(rec / d / "ft100/train.log", "ctc")
        assert len(ctc) >= 2 and ctc[-1] < 0.8 * ctc[0], (d, ctc)
    results = (rec / "RESULTS_smoke.md").read_text()
    assert "| method | CER ft 100% | CER ft 2% |" in results
    for name in ("teacher", "S&W 2x192, CNN, L1+cos+L_disc", "S&W 2x192, Fbank, L1+cos+L_disc"):
        assert name in results
    assert "params (k)" in results and "RTF x1000" in results
    # L_disc's KL curve of every L_disc student, plotted and tabulated in its own section
    assert "L_disc during distillation" in results and "| exp/sw_disc/seed1 |" in results
    assert "| exp/fb_disc/seed1 |" in results and (rec / "disc_kl_smoke.png").stat().st_size > 1000
    assert "D&T 8x100, CNN, L1+cos+L_disc: not run" in results
    assert "from scratch (S&W 2x192 architecture, no distillation)" in results
    # claims whose rows were not run are dropped with a note (so --strict passes), not decided
    assert ("Claim 'L_disc helps (the paper: most at low resource)': not decided here "
            "(row 'S&W 2x192, CNN, L1+cos' not run)") in results


def test_librispeech_hubert_kd_stages_1_to_4_on_fake_tree(tmp_path):
    """The real recipe's data prep, tokens, features and teacher import run on a fake LibriSpeech tree
    and a tiny Hugging Face HuBERT."""
    from transformers import HubertConfig, HubertModel

    from speechkd.corpus.librispeech import make_fake_tree

    tree = make_fake_tree(tmp_path / "src", subsets=("train-clean-100", "dev-clean", "test-clean", "test-other"))
    hf = tmp_path / "hubert_tiny"
    HubertModel(HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2),
                             num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)).save_pretrained(hf)
    rec = copy_recipe("librispeech/hubert_kd", tmp_path)
    env = dict(os.environ, SPEECHKD_ROOT=str(ROOT), cmd_backend="local", HF_HUB_OFFLINE="1")
    p = subprocess.run(["bash", "run.sh", "--stop_stage", "4", "--nj", "2", "--src", str(tree["librispeech"]),
                        "--finetune_src", str(tree["finetune"]), "--teacher_ckpt", str(hf), "--students", "sw dt"],
                       cwd=rec, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-4000:]
    # an HF HubertModel has no codebook head: the L_disc students (the default list has them) stop at stage 4
    q = subprocess.run(["bash", "run.sh", "--stage", "4", "--stop_stage", "4", "--teacher_ckpt", str(hf)],
                       cwd=rec, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert q.returncode == 1 and "need the teacher's HuBERT head" in q.stdout, q.stdout[-3000:]
    for d in ("train_clean_100", "dev_clean", "test_clean", "test_other", "train_10h", "train_1h", "train_10min"):
        assert (rec / "data" / d / "wav.scp").exists(), d
    n_train = len((rec / "data/train_clean_100/wav.scp").read_text().splitlines())
    assert n_train == 4 and len((rec / "data/train_clean_100/feats.scp").read_text().splitlines()) == n_train
    assert (rec / "dump/fbank/train_clean_100/cmvn.npz").exists()
    assert (rec / "data/token_char/units.txt").read_text().strip()
    from speechkd.models.checkpoint import load_checkpoint

    teacher, cfg = load_checkpoint(rec / "exp/teacher/model")
    assert cfg["model"]["type"] == "ssl" and teacher.cfg.n_layers == 2 and teacher.cfg.d_model == 32
    # the student options of every student parse as speechkd-distill overrides
    q = subprocess.run(["bash", "-c", "source <(sed -n '/^student_opts()/,/^}/p' run.sh); cmvn=x; "
                        "for s in sw sw_disc dt dt_disc fb fb_disc; do student_opts $s; done"],
                       cwd=rec, stdout=subprocess.PIPE, text=True)
    assert q.stdout.count("--student.preset") == 6 and q.stdout.count("--loss.w_disc 1.0") == 3


def test_librispeech_hubert_kd_dryrun(tmp_path):
    """``--conf_tag dryrun``: every stage of the real recipe on a fake LibriSpeech with the paper-size models
    (a random-weight HuBERT Base teacher, 2 x 768 / 12-layer students), 2 updates per training job."""
    rec = copy_recipe("librispeech/hubert_kd", tmp_path)
    env = dict(os.environ, SPEECHKD_ROOT=str(ROOT), cmd_backend="local", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    p = subprocess.run(["bash", "run.sh", "--conf_tag", "dryrun", "--students", "sw dt fb_disc",
                        "--ft_sets", "10min", "--test_sets", "test_clean"],
                       cwd=rec, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1500)
    assert p.returncode == 0, p.stdout[-6000:]
    from speechkd.models.checkpoint import load_checkpoint

    teacher, _ = load_checkpoint(rec / "exp/teacher/model")
    assert (teacher.cfg.n_layers, teacher.cfg.d_model) == (12, 768)          # HuBERT Base
    n_teacher = sum(p.numel() for p in teacher.parameters())
    assert 90e6 < n_teacher < 100e6, n_teacher
    sw, _ = load_checkpoint(rec / "exp/sw/model")
    dt, _ = load_checkpoint(rec / "exp/dt/model")
    assert (sw.cfg.n_layers, sw.cfg.d_model) == (2, 768) and dt.cfg.n_layers == 12
    n_sw, n_dt = (sum(p.numel() for p in m.parameters()) for m in (sw, dt))
    assert abs(n_dt - n_sw) < 0.05 * n_sw, (n_sw, n_dt)                  # D&T solved for S&W's budget
    for run in ("sw", "dt", "fb_disc", "fb_frontend"):
        steps = log_values(rec / f"exp/{run}/distill.log", "loss")
        assert len(steps) >= 2, run
    for d in ("ft_teacher", "sw", "dt", "fb_disc"):
        assert (rec / f"exp/{d}/ft10min/model/model.pt").exists(), d
        assert_rescored(rec / f"exp/{d}/ft10min/decode_test_clean/score.json", rec)
    assert "S&W 2x768, L1+cos" in (rec / "RESULTS_dryrun.md").read_text()
