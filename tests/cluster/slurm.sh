#!/usr/bin/env bash
# A single-node SLURM on this machine, for the cluster tests and for trying profiles/slurm.
#
#   sudo bash tests/cluster/slurm.sh up       # install (apt) if missing, configure, start, wait idle
#   bash tests/cluster/slurm.sh status        # sinfo
#   sudo bash tests/cluster/slurm.sh down     # stop the daemons (config and state stay)
#
# Needs root and apt (Debian/Ubuntu packages slurm-wlm and munge). `up` is idempotent: daemons
# that already answer are left running. No systemd is assumed: the daemons are started directly.
set -euo pipefail

CONF=/etc/slurm/slurm.conf  # srun inside batch jobs only looks here (a SLURM_CONF is not seen)
STATE=/var/spool/slurm-ground
TIMEOUT=${SLURM_UP_TIMEOUT:-60}

die() { echo "slurm.sh: $*" >&2; exit 1; }

install_packages() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null && return
    command -v apt-get >/dev/null || die "slurm-wlm/munge missing and apt-get unavailable"
    echo "slurm.sh: installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Package lists may be stale or absent on a fresh image; an install failure says so below.
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
    } || die "apt-get install slurm-wlm munge failed"
}

write_config() {
    local host cpus mem_kb mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    # Leave room for the OS and the daemons; slurmd drains a node that reports less than this.
    mem_mb=$(( mem_kb / 1024 * 9 / 10 - 512 ))
    mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" /var/log/slurm
    cat >"$CONF.new" <<EOF
# Written by tests/cluster/slurm.sh: one node ($host), for tests only.
ClusterName=ground-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# No cgroups in containers: track processes by parent pid, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue for 15 min: the executor plugin polls with squeue.
MinJobAge=900
# A node that was down (e.g. slurmd restarted) comes back by itself.
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    if cmp -s "$CONF.new" "$CONF"; then
        rm "$CONF.new"
        return 1  # unchanged
    fi
    mv "$CONF.new" "$CONF"
}

start_munge() {
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    if ! munge -n </dev/null >/dev/null 2>&1; then
        # munged refuses to run as root; Debian runs it as the munge user.
        runuser -u munge -- /usr/sbin/munged
    fi
    for _ in $(seq 20); do munge -n </dev/null >/dev/null 2>&1 && return; sleep 0.5; done
    die "munged did not start (see /var/log/munge/munged.log)"
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_slurm() {
    local changed=$1
    if [[ $changed == yes ]]; then  # a new config takes effect only on a restart
        stop_slurm
    fi
    running /run/slurmctld.pid || slurmctld
    running /run/slurmd.pid || slurmd
}

wait_idle() {
    local host state
    host=$(hostname -s)
    for _ in $(seq "$TIMEOUT"); do
        state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
        case $state in
        idle | mixed | allocated) echo "slurm.sh: node $host is $state"; return ;;
        down* | drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
        esac
        sleep 1
    done
    die "node $host not idle after ${TIMEOUT}s (state: ${state:-none}); see /var/log/slurm/*.log"
}

stop_pidfile() {
    running "$1" || return 0
    local pid
    pid=$(cat "$1")
    kill "$pid"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
}

stop_slurm() {
    stop_pidfile /run/slurmd.pid
    stop_pidfile /run/slurmctld.pid
}

case ${1:-} in
up)
    [[ $(id -u) == 0 ]] || die "up needs root (apt-get, /etc/slurm, daemons)"
    install_packages
    if write_config; then changed=yes; else changed=no; fi
    start_munge
    start_slurm "$changed"
    wait_idle
    ;;
down)
    stop_slurm
    # munged is ours only if no other daemon uses it; stopping it is harmless for tests.
    stop_pidfile /run/munge/munged.pid
    echo "slurm.sh: stopped"
    ;;
status)
    command -v sinfo >/dev/null || die "SLURM is not installed (run: sudo bash $0 up)"
    sinfo
    ;;
*)
    die "usage: $0 up|down|status"
    ;;
esac
