#!/usr/bin/env bash
# Run every benchmark and print one table of the ratios they measured (each ratio comes from one run of
# one script on this machine: ours vs the reference measured side by side, never a stored number).
#
#   bash bench/run_all.sh            # quick sizes (~8 min on 2 idle cores)
#   bash bench/run_all.sh --full     # each bench's default sizes (import_memory: ~5 GB in the temp dir)
#
# Full logs: bench/logs/<name>.log. Installs the environment on first use.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
source "$root/tools/activate.sh"
cd "$root/bench"
full=false
[ "${1:-}" = --full ] && full=true
mkdir -p logs

declare -A quick=(
  [fbank]="--seconds 20 --batch 4 --runs 5"
  [encoder]="--batch 4 --seconds 2 --runs 3"
  [frontend]="--seconds 4 --runs 5 --device all"
  [rnnt_loss]="--sizes 25x5,50x10,100x20 --big 300x60 --repeats 2"
  [rnnt_joiner_memory]="--B 4 --T 200 --U 40 --V 500 --chunks 16"
  [student_roofline]="--seconds 4 --runs 3"
  [train_throughput]="--steps 2"
  [threads]="--reps 3 --fbank-seconds 5"
  [import_memory]="--small --with-optimizer"
)
order="fbank encoder frontend rnnt_loss rnnt_joiner_memory student_roofline train_throughput threads import_memory"
failed=""
for b in $order; do
  args=${quick[$b]}
  $full && args=""
  echo "== bench/$b.py $args" >&2
  # shellcheck disable=SC2086
  if ! python "$b.py" $args > "logs/$b.log" 2>&1; then
    failed="$failed $b"
    echo "   FAILED, see bench/logs/$b.log" >&2
  fi
done

echo
echo "| benchmark | ratio | meaning |"
echo "|---|---:|---|"
grep -h "^RATIO" logs/*.log | awk -F'\t' '{printf "| %s | %s | %s |\n", $2, $3, $4}'
echo
echo "$(date '+%F %T') $(python -c 'import torch,platform; print("torch", torch.__version__, "|", platform.processor() or platform.machine(), "|", torch.get_num_threads(), "threads")')"
[ -z "$failed" ] || { echo "failed:$failed" >&2; exit 1; }
