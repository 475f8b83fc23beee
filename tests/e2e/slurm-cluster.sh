#!/usr/bin/env bash
# A single-node Slurm cluster with its own munged, started by hand (no systemd) on
# 127.0.0.1, plus the Debian packages of Prometheus and VictoriaMetrics, for the
# end-to-end tests.
#
#   slurm-cluster.sh install   install the Debian packages (root)
#   slurm-cluster.sh start     create test users, start munged, slurmctld and slurmd
#   slurm-cluster.sh stop      cancel the test jobs, stop what start started, by PID
#   slurm-cluster.sh status    exit 0 if the cluster answers
#   slurm-cluster.sh conf      print the path of the cluster's slurm.conf (SLURM_CONF)
#
# It leaves a host's own Slurm and munge alone: everything lives under $STATE (its own
# slurm.conf, used through SLURM_CONF; its own munge key, socket and daemon; ports
# 16817/16818), nothing is written under /etc/slurm or /etc/munge, and only the
# processes whose PIDs it recorded are stopped. It refuses to start while a slurmctld or
# slurmd it did not start runs, unless E2E_SLURM_TAKE_OVER=1. Test users it created are
# removed again by stop. Every command is idempotent: running it twice, or after a
# crash, works.
set -euo pipefail

STATE=${E2E_SLURM_STATE:-/var/tmp/pce-e2e-slurm}
CONF=$STATE/slurm.conf
MUNGE=$STATE/munge
MUNGE_KEY=$STATE/munge-key/munge.key
MARK="# written by slurm-cluster.sh; removed by its stop"
export SLURM_CONF=$CONF
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
# shellcheck source=cluster-lib.sh
. "$(dirname "$0")/cluster-lib.sh"

install_packages() {
    install_missing "prometheus promtool victoria-metrics slurmctld slurmd sbatch munged curl chromium" \
        "${PACKAGES[@]}"
}

create_users() {
    local entry name uid group gid
    install -d -m 0755 "$STATE"
    for entry in "${USERS[@]}"; do
        IFS=: read -r name uid group gid <<<"$entry"
        if ! getent group "$group" >/dev/null; then
            groupadd -g "$gid" "$group"
            echo "group $group" >>"$STATE/created"
        fi
        if ! getent passwd "$name" >/dev/null; then
            useradd -M -d /nonexistent -u "$uid" -g "$group" -s /usr/sbin/nologin "$name"
            echo "user $name" >>"$STATE/created"
        fi
    done
}

remove_created() {
    local kind name
    [ -f "$STATE/created" ] || return 0
    # Users first (their primary groups cannot go before them).
    for kind in user group; do
        while read -r k name; do
            [ "$k" = "$kind" ] || continue
            if [ "$kind" = user ]; then
                userdel "$name" 2>/dev/null || log "could not remove user $name (still in use?)"
            else
                groupdel "$name" 2>/dev/null || log "could not remove group $name"
            fi
        done <"$STATE/created"
    done
    rm -f "$STATE/created"
}

# PIDs of running processes whose command name is $1 (read from /proc; nothing is sent).
pids_named() {
    local dir comm
    for dir in /proc/[0-9]*; do
        comm=$(cat "$dir/comm" 2>/dev/null) || continue
        [ "$comm" = "$1" ] && echo "${dir#/proc/}"
    done
    return 0
}

refuse_foreign_slurm() {
    local name pid ours foreign=()
    for name in slurmctld slurmd; do
        ours=""
        [ -s "$STATE/$name.pid" ] && ours=$(cat "$STATE/$name.pid")
        for pid in $(pids_named "$name"); do
            [ "$pid" != "$ours" ] && foreign+=("$name (PID $pid)")
        done
    done
    if [ ${#foreign[@]} -gt 0 ] && [ "${E2E_SLURM_TAKE_OVER:-0}" != 1 ]; then
        log "refusing to start: running, not started by this script: ${foreign[*]};"
        log "set E2E_SLURM_TAKE_OVER=1 to run the test cluster beside them anyway"
        exit 3
    fi
    if [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
        log "refusing to start: $CONF exists and was not written by this script"
        exit 3
    fi
}

write_conf() {
    local host
    host=$(hostname -s)
    install -d -m 0755 "$STATE" "$STATE/state" "$STATE/spool"
    cat >"$CONF" <<CONF
$MARK
ClusterName=ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE/munge.socket
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
    if pid_running "$STATE/slurmctld.pid" && pid_running "$STATE/slurmd.pid" && cluster_answers; then
        log "already running"
        return
    fi
    refuse_foreign_slurm
    create_users
    # Leftovers of a crash: stop whatever is recorded, start clean.
    stop_daemons
    write_conf
    start_munged "$MUNGE_KEY" "$MUNGE"
    # -i: ignore saved state from an earlier run (no stale jobs).
    rm -rf "${STATE:?}/state/"*
    slurmctld -i -f "$CONF"
    slurmd -f "$CONF"
    local i
    for i in $(seq 1 300); do
        if cluster_answers; then
            log "cluster up after $((i / 10)).$((i % 10)) s (SLURM_CONF=$CONF)"
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
    local entry i
    if [ -f "$CONF" ] && pid_running "$STATE/slurmctld.pid"; then
        for entry in "${USERS[@]}"; do
            timeout 10 scancel --quiet -u "${entry%%:*}" 2>/dev/null || true
        done
        # Slurm ends the jobs' processes itself; wait until it has.
        for i in $(seq 1 100); do
            [ -z "$(timeout 5 squeue -h -t RUNNING,COMPLETING -o %A 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    stop_pidfile "$STATE/slurmd.pid"
    stop_pidfile "$STATE/slurmctld.pid"
}

stop() {
    need_root
    stop_daemons
    stop_pidfile "$MUNGE/munged.pid"
    remove_created
    log "stopped"
}

case "${1:-}" in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    status) cluster_answers ;;
    conf) echo "$CONF" ;;
    *)
        echo "usage: $0 install|start|stop|status|conf" >&2
        exit 2
        ;;
esac
