# shellcheck shell=bash
# Job runners of a recipe: run.sh calls them as  ${train_cmd} [--gpu 1 --mem 8G ...] JOB=1:N log.JOB cmd ...
#
#   local (default): utils/run.py runs the jobs on this machine (at most --max-jobs-run, default nproc)
#   slurm:           utils/slurm.py submits one Slurm array job per call, options mapped by conf/slurm.conf
#
# Select with the environment (cmd_backend=slurm ./run.sh ...) or change the default below.
# Options the stages pass: --gpu N (cuda_cmd), --mem, --time, --num-threads; run.py ignores all but
# --num-threads/--max-jobs-run.
cmd_backend=${cmd_backend:-local}

case "$cmd_backend" in
  local)
    train_cmd="utils/run.py"
    decode_cmd="utils/run.py"
    feats_cmd="utils/run.py"
    cuda_cmd="utils/run.py"
    ;;
  slurm)
    train_cmd="utils/slurm.py --config conf/slurm.conf"
    decode_cmd="utils/slurm.py --config conf/slurm.conf"
    feats_cmd="utils/slurm.py --config conf/slurm.conf"
    cuda_cmd="utils/slurm.py --config conf/slurm.conf"
    ;;
  *)
    echo "cmd.sh: unknown cmd_backend '$cmd_backend' (local or slurm)" >&2
    return 1 2>/dev/null || exit 1
    ;;
esac
