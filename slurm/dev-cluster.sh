#!/usr/bin/env bash
# A throw-away single-node SLURM cluster (munge + slurmctld + slurmd) with 4 fake GPUs, for tests and
# trying `tornadostudy submit` on a laptop. Debian, as root. Idempotent.
#
#   slurm/dev-cluster.sh start    install if needed, start, wait until the node is idle
#   slurm/dev-cluster.sh stop     cancel jobs, stop the daemons
#   slurm/dev-cluster.sh status   sinfo + squeue
#   slurm/dev-cluster.sh env      print `export SLURM_CONF=…` for clients
#
# Settings (environment): TORNADOSTUDY_SLURM_PREFIX (default /tmp/tornadostudy-slurm),
# TORNADOSTUDY_SLURM_CPUS (CPUs the node advertises, default 64: more tasks than cores may run at once).
set -euo pipefail

PREFIX=${TORNADOSTUDY_SLURM_PREFIX:-/tmp/tornadostudy-slurm}
CPUS=${TORNADOSTUDY_SLURM_CPUS:-64}
HOST=$(hostname -s)
CONF_DIR=$PREFIX/etc
export SLURM_CONF=$CONF_DIR/slurm.conf

say() { printf 'dev-cluster: %s\n' "$*" >&2; }

install_packages() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    [ "$(id -u)" = 0 ] || { say "needs root to install slurm-wlm and munge"; exit 1; }
    say "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  fi
}

write_config() {
  mkdir -p "$CONF_DIR" "$PREFIX"/{state,spool,run,log,gpu}
  for i in 0 1 2 3; do ln -sfn /dev/null "$PREFIX/gpu/gpu$i"; done  # fake GPUs: must be device files
  cat >"$CONF_DIR/slurm.conf.new" <<CONF
ClusterName=dev
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$PREFIX/log/jobcomp.txt
GresTypes=gpu
StateSaveLocation=$PREFIX/state
SlurmdSpoolDir=$PREFIX/spool
SlurmctldPidFile=$PREFIX/run/slurmctld.pid
SlurmdPidFile=$PREFIX/run/slurmd.pid
SlurmctldLogFile=$PREFIX/log/slurmctld.log
SlurmdLogFile=$PREFIX/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=1000 Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
  printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s/gpu/gpu[0-3]\n' "$HOST" "$PREFIX" >"$CONF_DIR/gres.conf"
  mv "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    mungekey --create --keyfile /etc/munge/munge.key >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
  fi
  chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- munged
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.25; done
  fi
}

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_daemons() {
  running "$PREFIX/run/slurmctld.pid" || slurmctld -f "$SLURM_CONF"
  for _ in $(seq 40); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.25; done
  running "$PREFIX/run/slurmd.pid" || slurmd -f "$SLURM_CONF"
}

wait_idle() {
  local state
  for _ in $(seq 120); do
    state=$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in
      idle|mixed|allocated) say "node $HOST is $state (SLURM_CONF=$SLURM_CONF)"; return 0 ;;
      drain*|down*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  say "node $HOST did not become idle (state: ${state:-unknown}); see $PREFIX/log"
  return 1
}

stop_all() {
  scancel --user="$(id -un)" >/dev/null 2>&1 || true
  for daemon in slurmd slurmctld; do
    if running "$PREFIX/run/$daemon.pid"; then kill "$(cat "$PREFIX/run/$daemon.pid")" 2>/dev/null || true; fi
  done
  for _ in $(seq 20); do
    running "$PREFIX/run/slurmd.pid" || running "$PREFIX/run/slurmctld.pid" || break
    sleep 0.25
  done
  say "stopped"
}

case "${1:-}" in
  start) install_packages; write_config; start_munge; start_daemons; wait_idle ;;
  stop) stop_all ;;
  status) sinfo; squeue ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
