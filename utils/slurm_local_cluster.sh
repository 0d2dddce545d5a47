#!/usr/bin/env bash
# Start or stop a one-node Slurm cluster on this machine (loopback), for testing utils/slurm.py.
#
# Usage:
#   utils/slurm_local_cluster.sh start [DIR]    # installs slurm-wlm + munge with apt-get if missing (root)
#   export SLURM_CONF=DIR/slurm.conf            # (or: source DIR/env.sh) then sbatch/squeue/utils/slurm.py
#   utils/slurm_local_cluster.sh stop [DIR]
#
# DIR (default ${SLURM_LOCAL_DIR:-/tmp/speechkd-slurm}) holds the config, state, spool, logs and pid files;
# nothing is written under /etc except by apt-get. Needs root (slurmd runs jobs as their user) and a
# Debian-like system without systemd: the daemons are started directly. Ports: SLURM_LOCAL_CTLD_PORT
# (default 6817) and SLURM_LOCAL_SLURMD_PORT (default 6818).
#
# Every wait has a timeout; on failure the script prints the daemon log tail and exits non-zero.
set -euo pipefail

action=${1:-}
dir=${2:-${SLURM_LOCAL_DIR:-/tmp/speechkd-slurm}}
ctld_port=${SLURM_LOCAL_CTLD_PORT:-6817}
slurmd_port=${SLURM_LOCAL_SLURMD_PORT:-6818}

log() { echo "slurm_local_cluster: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds
wait_for() {
  local limit=$1 what=$2 t=0
  shift 2
  until "$@" >/dev/null 2>&1; do
    sleep 0.5
    t=$((t + 1))
    if [ "$t" -ge $((limit * 2)) ]; then
      log "timed out after ${limit}s waiting for $what"
      return 1
    fi
  done
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "slurm-wlm/munge missing and not root: cannot install them"
  command -v apt-get >/dev/null || die "slurm-wlm/munge missing and no apt-get to install them"
  log "installing slurm-wlm munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >/dev/null || die "apt-get update failed"
  timeout 600 apt-get install -y -qq slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
}

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  if munge_ok; then
    return 0
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile=/etc/munge/munge.key
    else
      dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 755 /run/munge
  runuser -u munge -- munged --force
  touch "$dir/munged.started-by-us"
  wait_for 20 "munged" munge_ok || die "munged did not start"
}

write_conf() {
  local node
  # The node's real hardware as slurmd sees it (a mismatch would mark the node invalid).
  node=$(slurmd -C | head -n 1 | sed -E 's/^NodeName=[^ ]+ //; s/UpTime=.*//')
  [ -n "$node" ] || die "slurmd -C printed nothing"
  cat > "$dir/slurm.conf" <<EOF
# One-node test cluster written by utils/slurm_local_cluster.sh
ClusterName=speechkd-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MailProg=/bin/true
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=60
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 $node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  printf 'export SLURM_CONF=%s\n' "$dir/slurm.conf" > "$dir/env.sh"
}

node_idle() { sinfo -h -n localhost -o %T 2>/dev/null | grep -qiE '^(idle|mixed|allocated)'; }

show_logs() {
  local f
  for f in "$dir"/log/*.log; do
    [ -f "$f" ] && { log "--- tail $f"; tail -n 20 "$f" >&2; }
  done
  return 0
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  install_packages
  if pid_alive "$dir/slurmctld.pid" || pid_alive "$dir/slurmd.pid"; then
    log "already running in $dir (stop it first)"
    printf '%s\n' "$dir/slurm.conf"
    return 0
  fi
  rm -rf "$dir/state" "$dir/spool" "$dir/log"
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  start_munge
  write_conf
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -i || { show_logs; die "slurmctld failed to start"; }
  wait_for 30 "slurmctld" scontrol ping || { show_logs; die "slurmctld not answering"; }
  slurmd -N localhost || { show_logs; die "slurmd failed to start"; }
  if ! wait_for 30 "node localhost to become idle" node_idle; then
    scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    wait_for 15 "node localhost after resume" node_idle || { show_logs; sinfo >&2 || true; die "node not idle"; }
  fi
  log "cluster up: export SLURM_CONF=$dir/slurm.conf"
  printf '%s\n' "$dir/slurm.conf"
}

kill_pidfile() {
  local f=$1 pid t=0
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
    t=$((t + 1))
    if [ "$t" -ge 50 ]; then
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
  done
  rm -f "$f"
}

stop() {
  if [ -f "$dir/slurm.conf" ]; then
    SLURM_CONF=$dir/slurm.conf timeout 10 scancel --user="$(id -un)" >/dev/null 2>&1 || true
  fi
  kill_pidfile "$dir/slurmd.pid"
  kill_pidfile "$dir/slurmctld.pid"
  if [ -f "$dir/munged.started-by-us" ]; then
    kill_pidfile /run/munge/munged.pid
    rm -f "$dir/munged.started-by-us"
  fi
  log "stopped ($dir)"
}

case $action in
  start) mkdir -p "$dir"; start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
