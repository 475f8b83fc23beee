#!/usr/bin/env bash
# A second Slurm test cluster ("acct") with real accounting: MariaDB, slurmdbd, slurmctld
# and two slurmd nodes (for het jobs), all inside a network namespace of its own, for the
# sacct end-to-end tests. slurmdbd listens on every interface whatever DbdAddr says; in
# the namespace "every interface" is a loopback nobody else can reach.
#
#   slurm-accounting.sh install   install the Debian packages (root)
#   slurm-accounting.sh start     start the namespace and every daemon, create the
#                                 accounts and users (the test users of slurm-cluster.sh)
#   slurm-accounting.sh stop      stop what start started, by PID, and remove its state
#   slurm-accounting.sh status    exit 0 if the cluster answers
#   slurm-accounting.sh conf      print the path of its slurm.conf (SLURM_CONF)
#   slurm-accounting.sh netns     print the path of its network namespace (for setns)
#   slurm-accounting.sh run CMD   run CMD in the namespace with its SLURM_CONF
#
# Nothing under /etc is written and no host daemon is touched: everything lives under
# $STATE (its own munge key, socket and daemon, database directory, configuration), and
# only the processes whose PIDs it recorded are stopped. The namespace lives as long as
# the holder process started by start (its PID in $STATE/netns.pid).
set -euo pipefail

STATE=${E2E_SLURM_ACCT_STATE:-/var/tmp/pce-e2e-slurmacct}
ETC=$STATE/etc
CONF=$ETC/slurm.conf
MUNGE=$STATE/munge
DB_RUN=$STATE/mysql-run
MARK="# written by slurm-accounting.sh; removed by its stop"
CTLD_PORT=16827
SLURMD_PORT=16828 # and 16829: one port per node
DBD_PORT=16830
DB_PORT=16831
export SLURM_CONF=$CONF
PACKAGES=(mariadb-server mariadb-client slurmdbd slurmctld slurmd slurm-client munge iproute2)
# Accounts of the test users (slurm-cluster.sh creates the users): user:accounts.
ASSOCIATIONS=("alice:physics,chemistry" "bob:chemistry" "carol:biology" "dave:biology")

log() { echo "slurm-accounting: $*" >&2; }
# shellcheck source=cluster-lib.sh
. "$(dirname "$0")/cluster-lib.sh"

install_packages() {
    install_missing "mariadbd mariadb-install-db mariadb slurmdbd sacctmgr slurmctld slurmd munged ip nsenter unshare" \
        "${PACKAGES[@]}"
}

netns_path() { echo "/proc/$(cat "$STATE/netns.pid")/ns/net"; }

# Run a command in the namespace.
ns() { nsenter --net="$(netns_path)" "$@"; }

start_netns() {
    if pid_running "$STATE/netns.pid"; then
        return
    fi
    # unshare execs sleep in a new network namespace: its PID holds the namespace.
    setsid unshare --net sleep infinity </dev/null >/dev/null 2>&1 &
    echo $! >"$STATE/netns.pid"
    local i
    for i in $(seq 1 50); do
        [ "$(readlink "$(netns_path)")" != "$(readlink /proc/self/ns/net)" ] && break
        sleep 0.1
    done
    ns ip link set lo up
    # slurmdbd exits at start without a second address on the loopback.
    ns ip addr add 127.0.0.2/8 dev lo
}

sql() { mariadb --no-defaults -S "$DB_RUN/mysqld.sock" -u root "$@"; }

start_mariadb() {
    pid_running "$DB_RUN/mysqld.pid" && return
    if [ ! -d "$STATE/mysql/mysql" ]; then
        install -d -o mysql -g mysql -m 0700 "$STATE/mysql"
        mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mysql" \
            --auth-root-authentication-method=socket --skip-test-db >"$STATE/mariadb-install.log" 2>&1
    fi
    # Its socket, PID and log file in a directory of its own: mariadbd runs as mysql.
    install -d -o mysql -g mysql -m 0755 "$DB_RUN"
    ns setsid mariadbd --no-defaults --user=mysql --datadir="$STATE/mysql" \
        --socket="$DB_RUN/mysqld.sock" --port=$DB_PORT --bind-address=127.0.0.1 \
        --skip-name-resolve --pid-file="$DB_RUN/mysqld.pid" --log-error="$DB_RUN/mysqld.log" \
        </dev/null >/dev/null 2>&1 &
    local i
    for i in $(seq 1 300); do
        sql -e "select 1" >/dev/null 2>&1 && break
        sleep 0.1
    done
    sql -e "select 1" >/dev/null || { tail -20 "$DB_RUN/mysqld.log" >&2; exit 1; }
    if [ ! -s "$STATE/db-password" ]; then
        (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$STATE/db-password")
    fi
    sql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
            CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$STATE/db-password")';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

write_conf() {
    local host
    host=$(hostname -s)
    install -d -m 0755 "$ETC" "$STATE/state"
    (umask 077 && cat >"$ETC/slurmdbd.conf" <<CONF
$MARK
AuthType=auth/munge
AuthInfo=socket=$MUNGE/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$STATE/db-password")
StorageLoc=slurm_acct_db
# As many sites: plain users see only their own jobs in accounting.
PrivateData=jobs
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
CONF
    )
    cat >"$CONF" <<CONF
$MARK
ClusterName=acct
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=$CTLD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE/munge.socket
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool-%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd-%n.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE/munge.socket
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=n1,n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=$SLURMD_PORT-$((SLURMD_PORT + 1)) CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
}

cluster_answers() {
    [ -f "$STATE/netns.pid" ] && pid_running "$STATE/netns.pid" &&
        timeout 5 nsenter --net="$(netns_path)" sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'
}

wait_for() {
    local what=$1 logfile=$2 i
    shift 2
    for i in $(seq 1 300); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "$what did not come up; its log:"
    tail -20 "$logfile" >&2 || true
    exit 1
}

create_associations() {
    local entry user accounts
    ns sacctmgr -i add cluster acct >/dev/null 2>&1 || true
    ns sacctmgr -i add account physics,chemistry,biology Cluster=acct >/dev/null 2>&1 || true
    for entry in "${ASSOCIATIONS[@]}"; do
        user=${entry%%:*}
        accounts=${entry#*:}
        ns sacctmgr -i add user "$user" Account="$accounts" DefaultAccount="${accounts%%,*}" \
            >/dev/null 2>&1 || true
    done
    ns sacctmgr -n -P list associations cluster=acct format=User,Account | grep -q '^alice|chemistry$' ||
        { log "sacctmgr did not create the associations"; exit 1; }
}

start() {
    need_root
    if cluster_answers; then
        log "already running"
        return
    fi
    local entry
    for entry in "${ASSOCIATIONS[@]}"; do
        getent passwd "${entry%%:*}" >/dev/null || {
            log "user ${entry%%:*} missing: start slurm-cluster.sh first"
            exit 1
        }
    done
    stop_daemons
    install -d -m 0755 "$STATE"
    start_netns
    start_munged "$STATE/munge-key/munge.key" "$MUNGE"
    start_mariadb
    write_conf
    ns slurmdbd
    wait_for slurmdbd "$STATE/slurmdbd.log" ns sacctmgr -n list cluster
    create_associations
    rm -rf "${STATE:?}/state/"*
    ns slurmctld -i
    ns slurmd -N n1
    ns slurmd -N n2
    wait_for "the cluster" "$STATE/slurmctld.log" cluster_answers
    log "accounting cluster up (SLURM_CONF=$CONF, network namespace $(netns_path))"
}

stop_daemons() {
    if [ -f "$STATE/netns.pid" ] && pid_running "$STATE/slurmctld.pid"; then
        local entry
        for entry in "${ASSOCIATIONS[@]}"; do
            timeout 10 nsenter --net="$(netns_path)" scancel --quiet --user="${entry%%:*}" \
                2>/dev/null || true
        done
    fi
    stop_pidfile "$STATE/slurmd-n1.pid"
    stop_pidfile "$STATE/slurmd-n2.pid"
    stop_pidfile "$STATE/slurmctld.pid"
    stop_pidfile "$STATE/slurmdbd.pid"
    # MariaDB may take tens of seconds to stop cleanly.
    stop_pidfile "$DB_RUN/mysqld.pid" 600
    stop_pidfile "$MUNGE/munged.pid"
    stop_pidfile "$STATE/netns.pid"
}

stop() {
    need_root
    stop_daemons
    if [ -f "$CONF" ] && grep -qxF "$MARK" "$CONF"; then
        rm -rf "${STATE:?}"
    fi
    log "stopped"
}

case "${1:-}" in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    status) cluster_answers ;;
    conf) echo "$CONF" ;;
    netns) netns_path ;;
    run)
        shift
        ns "$@"
        ;;
    *)
        echo "usage: $0 install|start|stop|status|conf|netns|run CMD..." >&2
        exit 2
        ;;
esac
