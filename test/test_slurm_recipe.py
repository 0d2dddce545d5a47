"""A mini recipe through Slurm (issue 8): the parallel feature and decoding stages and the training stages
of egs/mini_espeak/asr run as Slurm array jobs via cmd.sh (cmd_backend=slurm) on a one-node cluster; logs
land where run.sh says; a failing array task fails the stage and names its log."""
from __future__ import annotations

import json

from recipe_runner import copy_recipe, run_recipe

# A CPU-only site: GPU requests are dropped (a GPU site keeps "--gres=gpu:$0", as egs/TEMPLATE's does).
CPU_SITE_CONF = """command sbatch --export=ALL
option name=* --job-name $0
option time=* --time $0
option mem=* --mem $0
option mem=0
option num_threads=* --cpus-per-task $0
option gpu=*
default gpu=0
"""


def test_mini_asr_recipe_through_slurm(slurm_env, tmp_path, monkeypatch):
    for k, v in slurm_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("cmd_backend", "slurm")
    rdir = copy_recipe("mini_espeak/asr", tmp_path)
    (rdir / "conf" / "slurm.conf").unlink()
    (rdir / "conf" / "slurm.conf").write_text(CPU_SITE_CONF)
    run_recipe(rdir, "--conf_tag", "smoke", "--seeds", "1", "--inits", "scratch", "--stop_stage", "7",
                      backend="slurm")
    # feature extraction and decoding ran as array jobs: one log per job, where the stages put them
    feat_logs = sorted((rdir / "dump" / "fbank" / "train" / "log").glob("feats.*.log"))
    assert len(feat_logs) == 2 and all("# Ended (code 0)" in p.read_text() for p in feat_logs)
    assert (rdir / "dump" / "fbank" / "train" / "log" / "q").is_dir()  # the sbatch scripts
    dec = rdir / "exp" / "ft_scratch" / "seed1" / "decode_test"
    assert len(list((dec / "log").glob("decode.*.log"))) == 2
    assert json.loads((dec / "score.json").read_text())
    for log in (rdir / "exp" / "teacher" / "train.log", rdir / "exp" / "ft_scratch" / "seed1" / "train.log"):
        assert "# Ended (code 0)" in log.read_text(), log

    # a failing array task fails the stage and names its log
    wavs = (rdir / "data" / "dev" / "wav.scp").read_text().splitlines()
    last_wav = wavs[-1].split(maxsplit=1)[1]
    with open(last_wav, "wb") as f:
        f.write(b"not audio")
    try:
        run_recipe(rdir, "--conf_tag", "smoke", "--stage", "3", "--stop_stage", "3", backend="slurm")
    except AssertionError as e:
        msg = str(e)
    else:
        raise AssertionError("stage 3 should fail on corrupt audio")
    assert "dump/fbank/dev/log/feats.2.log" in msg, msg[-2000:]
    assert "cannot read audio" in (rdir / "dump" / "fbank" / "dev" / "log" / "feats.2.log").read_text()
