#!/usr/bin/env bash
# A single-node Slurm cluster with munge, started by hand (no systemd) on 127.0.0.1,
# plus the Debian packages of Prometheus and VictoriaMetrics, for the end-to-end tests.
#
#   slurm-cluster.sh install   install the Debian packages (root)
#   slurm-cluster.sh start     create test users, start munged, slurmctld and slurmd
#   slurm-cluster.sh stop      cancel all jobs, stop the daemons by PID
#   slurm-cluster.sh status    exit 0 if the cluster answers
#
# Every command is idempotent: running it twice, or after a crash, works.
set -euo pipefail

STATE=${E2E_SLURM_STATE:-/var/tmp/pce-e2e-slurm}
CONF=/etc/slurm/slurm.conf
# curl: the HTTPS client of the TLS tests; chromium: the status page test.
PACKAGES=(prometheus slurmctld slurmd slurm-client munge victoria-metrics curl chromium)

# Test users: name:uid:group:gid. Primary groups are named unlike their users.
USERS=(
    "alice:3001:hpc-physics:3101"
    "bob:3002:hpc-chem:3102"
    "carol:3003:hpc-bio:3103"
    "dave:3004:hpc-geo:3104"
)

log() { echo "slurm-cluster: $*" >&2; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        log "must run as root"
        exit 1
    fi
}

install_packages() {
    need_root
    local missing=()
    for cmd in prometheus promtool victoria-metrics slurmctld slurmd sbatch munged curl chromium; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "packages already installed"
        return
    fi
    log "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
}

create_users() {
    local entry name uid group gid
    for entry in "${USERS[@]}"; do
        IFS=: read -r name uid group gid <<<"$entry"
        getent group "$group" >/dev/null || groupadd -g "$gid" "$group"
        getent passwd "$name" >/dev/null || useradd -m -u "$uid" -g "$group" -s /bin/bash "$name"
    done
}

pid_running() {
    local file=$1
    [ -s "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null
}

stop_pidfile() {
    local file=$1 pid i
    if pid_running "$file"; then
        pid=$(cat "$file")
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

write_conf() {
    local host
    host=$(hostname -s)
    install -d -m 0755 /etc/slurm "$STATE" "$STATE/state" "$STATE/spool"
    cat >"$CONF" <<CONF
ClusterName=ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
}

cluster_answers() {
    timeout 5 sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'
}

start() {
    need_root
    create_users
    if pid_running "$STATE/slurmctld.pid" && pid_running "$STATE/slurmd.pid" && cluster_answers; then
        log "already running"
        return
    fi
    # Leftovers of a crash: stop whatever is recorded, start clean.
    stop_daemons
    write_conf

    install -d -o munge -g munge -m 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    if ! pid_running /run/munge/munged.pid; then
        rm -f /run/munge/munged.pid
        runuser -u munge -- /usr/sbin/munged --force
    fi

    # -i: ignore saved state from an earlier run (no stale jobs).
    rm -rf "${STATE:?}/state/"*
    slurmctld -i
    slurmd
    local i
    for i in $(seq 1 300); do
        if cluster_answers; then
            log "cluster up after $((i / 10)).$((i % 10)) s"
            return
        fi
        sleep 0.1
    done
    log "cluster did not become idle; slurmctld log:"
    tail -20 "$STATE/slurmctld.log" >&2 || true
    tail -20 "$STATE/slurmd.log" >&2 || true
    exit 1
}

stop_daemons() {
    local entry name i
    if [ -f "$CONF" ] && pid_running "$STATE/slurmctld.pid"; then
        for entry in "${USERS[@]}"; do
            timeout 10 scancel --quiet -u "${entry%%:*}" 2>/dev/null || true
        done
        for i in $(seq 1 50); do
            [ -z "$(timeout 5 squeue -h -t RUNNING,COMPLETING -o %A 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    stop_pidfile "$STATE/slurmd.pid"
    stop_pidfile "$STATE/slurmctld.pid"
    # Job steps and job processes belong to this test cluster and its test users only.
    pkill -9 -x slurmstepd 2>/dev/null || true
    for entry in "${USERS[@]}"; do
        name=${entry%%:*}
        if getent passwd "$name" >/dev/null; then
            pkill -9 -u "$name" 2>/dev/null || true
        fi
    done
}

stop() {
    need_root
    stop_daemons
    stop_pidfile /run/munge/munged.pid
    log "stopped"
}

case "${1:-}" in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    status) cluster_answers ;;
    *)
        echo "usage: $0 install|start|stop|status" >&2
        exit 2
        ;;
esac
