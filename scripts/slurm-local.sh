#!/usr/bin/env bash
# A single-node Slurm on this machine, for trying cluster/kdtrain.sbatch and for the Slurm test
# (scripts/slurm-test.sh, run by Tests/LauncherTests/SlurmTests.swift).
#
#   scripts/slurm-local.sh start    install (root, Debian) and start munged, slurmctld, slurmd; wait until idle
#   scripts/slurm-local.sh stop     stop the three daemons started here
#   scripts/slurm-local.sh status   daemons and `sinfo`; exit 0 only when the node is usable
#   scripts/slurm-local.sh env      print `export SLURM_CONF=...` (use: eval "$(scripts/slurm-local.sh env)")
#
# Everything lives in a private state directory, KDTRAIN_SLURM_DIR (default /tmp/kdtrain-slurm):
# slurm.conf, a private munge key and socket, logs, spool and state; /etc/slurm is not touched.
# Slurm commands find this cluster through SLURM_CONF=$KDTRAIN_SLURM_DIR/slurm.conf.
# `start` is idempotent: a running, responsive cluster from the same directory is reused.
# When Slurm cannot start, the script prints one line starting "slurm-local: cannot start:" with
# the reason, and exits 2 (not installable / not root) or 1 (a daemon failed; see the logs named).
#
# The node is described with this machine's own CPU count and memory (`slurmd -C`), so a job asks
# for what really exists. Facts behind the configuration: ../../shared/platform.md ("Slurm").
set -euo pipefail

STATE=${KDTRAIN_SLURM_DIR:-/tmp/kdtrain-slurm}
CONF=$STATE/slurm.conf
PKGS="slurmd slurmctld slurm-client munge"
WAIT_IDLE_S=${KDTRAIN_SLURM_WAIT_S:-60}
# slurmctld listens on PORT, slurmd on PORT+1 (change it where a real Slurm runs on this machine).
PORT=${KDTRAIN_SLURM_PORT:-6817}

say() { echo "slurm-local: $*"; }
cannot() { local code=$1; shift; echo "slurm-local: cannot start: $*" >&2; exit "$code"; }

pid_alive() { [ -s "$1" ] && [ -d "/proc/$(cat "$1")" ]; }

# Waits up to $2 seconds for command $1 (a string run by bash) to succeed.
wait_for() {
  local cmd=$1 limit=$2 t=0
  while ! bash -c "$cmd" >/dev/null 2>&1; do
    t=$((t + 1)); [ "$t" -le $((limit * 5)) ] || return 1
    sleep 0.2
  done
}

node_state() { SLURM_CONF=$CONF timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n1; }

install_packages() {
  local missing=""
  for c in munged mungekey slurmctld slurmd sbatch sinfo scontrol srun; do
    command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
  done
  [ -z "$missing" ] && return 0
  [ "$(id -u)" = 0 ] || cannot 2 "missing commands:$missing; install the Debian packages ($PKGS) as root"
  command -v apt-get >/dev/null 2>&1 || cannot 2 "missing commands:$missing and no apt-get to install $PKGS"
  say "installing $PKGS (missing:$missing)"
  timeout 300 apt-get update -qq >/dev/null || cannot 2 "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends $PKGS >/dev/null \
    || cannot 2 "apt-get install $PKGS failed"
}

write_conf() {
  local host node cpus mem
  host=$(hostname -s)
  node=$(slurmd -C 2>/dev/null | head -n1) || true
  cpus=$(nproc)
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  [ -n "$mem" ] || mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 ))
  cat >"$CONF" <<EOF
# Written by scripts/slurm-local.sh: a single-node Slurm for kdtrain's cluster tests.
ClusterName=kdtrain-local
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket.2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
# Requeued batch jobs may run again (the default, written down because the sbatch script needs it).
JobRequeue=1
# Seconds between SIGTERM and SIGKILL at cancel, requeue and time limit: room for a checkpoint.
KillWait=30
MinJobAge=600
MailProg=/bin/true
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  local m=$STATE/munge
  mkdir -p "$m"
  chown munge:munge "$m"; chmod 0755 "$m"
  if [ ! -s "$m/munge.key" ]; then
    mungekey --create --keyfile="$m/munge.key" --force >/dev/null 2>&1 \
      || dd if=/dev/urandom of="$m/munge.key" bs=1024 count=1 status=none
  fi
  chown munge:munge "$m/munge.key"; chmod 0400 "$m/munge.key"
  pid_alive "$m/munged.pid" && return 0
  rm -f "$m/munge.socket.2" "$m/munge.socket.2.lock"
  runuser -u munge -- munged --socket="$m/munge.socket.2" --key-file="$m/munge.key" --pid-file="$m/munged.pid" \
    --log-file="$m/munged.log" --seed-file="$m/munged.seed" \
    || cannot 1 "munged failed to start (log: $m/munged.log)"
  wait_for "[ -S '$m/munge.socket.2' ]" 10 || cannot 1 "munged did not create its socket (log: $m/munged.log)"
}

start() {
  if [ -s "$CONF" ] && pid_alive "$STATE/run/slurmctld.pid" && pid_alive "$STATE/run/slurmd.pid"; then
    case "$(node_state)" in
      idle|mixed|allocated) say "already running ($CONF)"; return 0 ;;
    esac
    say "daemons running but the node is not usable: restarting"
    stop
  fi
  [ "$(uname -s)" = Linux ] || cannot 2 "needs Linux"
  install_packages
  [ "$(id -u)" = 0 ] || cannot 2 "needs root: this single-node Slurm runs its daemons as root (SlurmUser=root)"
  id munge >/dev/null 2>&1 || cannot 2 "no 'munge' user (the munge package creates it)"
  stop quiet   # leftovers of an earlier start from this directory
  mkdir -p "$STATE"/{ctld,spool,run,log}
  write_conf
  start_munge
  # -c: start with an empty job list (a private test cluster has nothing worth recovering).
  slurmctld -c -f "$CONF" || cannot 1 "slurmctld failed to start (log: $STATE/log/slurmctld.log)"
  wait_for "SLURM_CONF='$CONF' timeout 5 scontrol ping | grep -q UP" 20 \
    || cannot 1 "slurmctld does not answer (log: $STATE/log/slurmctld.log)"
  slurmd -f "$CONF" || cannot 1 "slurmd failed to start (log: $STATE/log/slurmd.log)"
  if ! wait_for "SLURM_CONF='$CONF' timeout 5 sinfo -h -N -o %T | grep -qx idle" "$WAIT_IDLE_S"; then
    local reason
    reason=$(SLURM_CONF=$CONF timeout 5 sinfo -h -N -o '%T %E' 2>&1 | head -n1 || true)
    cannot 1 "node not idle after ${WAIT_IDLE_S} s (state: ${reason:-unknown}; logs: $STATE/log/)"
  fi
  say "up: $(SLURM_CONF=$CONF sinfo -h -N -o '%N %T, %c CPUs, %m MB') (export SLURM_CONF=$CONF)"
}

# Stops the daemons whose pid files are in $STATE (never anything else), SIGKILL after 10 s.
stop() {
  local quiet=${1:-}
  local f pid any=""
  for f in "$STATE/run/slurmd.pid" "$STATE/run/slurmctld.pid" "$STATE/munge/munged.pid"; do
    pid_alive "$f" || continue
    pid=$(cat "$f"); any=1
    kill -TERM "$pid" 2>/dev/null || true
    wait_for "! kill -0 $pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  [ -n "$quiet" ] || { [ -n "$any" ] && say "stopped" || say "not running"; }
}

status() {
  local f ok=0
  for f in "$STATE/munge/munged.pid" "$STATE/run/slurmctld.pid" "$STATE/run/slurmd.pid"; do
    if pid_alive "$f"; then echo "$(basename "$f" .pid): running (pid $(cat "$f"))"; else echo "$(basename "$f" .pid): not running"; ok=1; fi
  done
  [ -s "$CONF" ] || { echo "no $CONF"; return 1; }
  SLURM_CONF=$CONF timeout 10 sinfo -N -o '%N %T %c %m %E' || ok=1
  case "$(node_state)" in idle|mixed|allocated) ;; *) ok=1 ;; esac
  return $ok
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env   (state in \${KDTRAIN_SLURM_DIR:-/tmp/kdtrain-slurm})" >&2; exit 64 ;;
esac
