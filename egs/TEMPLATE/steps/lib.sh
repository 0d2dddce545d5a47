# shellcheck shell=bash
# Shell helpers every recipe's run.sh sources after parse_options.sh (". steps/lib.sh"):
#   log MSG...                      timestamped line on stdout, prefixed with the calling script
#   conf_suffix TAG                 "" for default, "_TAG" otherwise (conf/x${sfx}.yaml)
#   corpus_languages CONF.yaml      the corpus.languages of a corpus config, space separated
#   nonzero NUM                     true when the number NUM is not zero ("0", "0.0" are zero)
#   run_pool MAX FN SPEC...         FN $SPEC (SPEC split into words) for each SPEC, at most MAX at once;
#                                   waits for all, fails (status 1, naming the failed SPECs) if any failed
#   best_model DIR                  DIR/model_best (the trainer's best validation checkpoint) when it was kept,
#                                   else DIR/model
#   scratch_finetune_opts           speechkd-finetune options of a from-scratch row: the architecture of --init,
#                                   random weights, the front-end trained too (an array)
scratch_finetune_opts=(--finetune.init_weights false --model.freeze_frontend false)
#   dryrun_train_opts               overrides of every training job of a real recipe's --conf_tag dryrun: the
#                                   configs' models and losses, 2 updates of small batches, no optimizer state
#                                   kept at the end (paper-size models: ~3x the weights per job) (an array)
dryrun_train_opts=(--train.max_steps 2 --train.log_interval 1 --train.valid_interval 2 --train.save_interval 2
                   --train.keep_last 1 --train.keep_final_state false --optim.warmup_steps 1
                   --data.batch_seconds 4 --data.num_workers 0)

best_model() { if [ -f "$1/model_best/model.pt" ]; then echo "$1/model_best"; else echo "$1/model"; fi; }

log() { echo -e "$(date '+%F %T') ($(basename "$0")) $*"; }

conf_suffix() { if [ "$1" = default ]; then echo ""; else echo "_$1"; fi; }

corpus_languages() { utils/yaml_get.py "$1" corpus.languages; }

nonzero() { awk -v x="$1" 'BEGIN { exit !(x + 0 != 0) }'; }

run_pool() {
  local max=$1 fn=$2
  shift 2
  local pids=() specs=() failed=() spec i
  for spec in "$@"; do
    # a full pool: wait for whichever job ends first (waiting for the oldest left a slot idle while it ran on)
    while [ "${#pids[@]}" -ge "$max" ]; do
      for i in "${!pids[@]}"; do
        if ! kill -0 "${pids[$i]}" 2>/dev/null; then
          wait "${pids[$i]}" || failed+=("${specs[$i]}")
          unset "pids[$i]" "specs[$i]"
        fi
      done
      pids=("${pids[@]}"); specs=("${specs[@]}")
      [ "${#pids[@]}" -lt "$max" ] || sleep 1
    done
    # shellcheck disable=SC2086
    $fn $spec &
    pids+=("$!")
    specs+=("$spec")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${specs[$i]}")
  done
  if [ "${#failed[@]}" -gt 0 ]; then
    echo "run_pool: ${#failed[@]} $fn job(s) failed: ${failed[*]}" >&2
    return 1
  fi
}
