# Shell functions shared by slurm-cluster.sh and slurm-accounting.sh (sourced, not run).
# The caller defines log().

need_root() {
    if [ "$(id -u)" != 0 ]; then
        log "must run as root"
        exit 1
    fi
}

# install_missing "CMD ..." PACKAGE...: install the Debian packages unless every command
# is already there.
install_missing() {
    local commands=$1 cmd missing=()
    shift
    need_root
    for cmd in $commands; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "packages already installed"
        return
    fi
    log "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pid_running() {
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# stop_pidfile FILE [TENTHS]: SIGTERM the recorded process, SIGKILL it after TENTHS tenths
# of a second (default 50), remove the file.
stop_pidfile() {
    local file=$1 wait=${2:-50} pid i
    if pid_running "$file"; then
        pid=$(cat "$file")
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 "$wait"); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

# start_munged KEY DIR: a munged of its own with the key KEY (made if missing) and its
# socket, PID, log and seed files in DIR.
start_munged() {
    local key=$1 dir=$2
    pid_running "$dir/munged.pid" && return
    install -d -o munge -g munge -m 0700 "$(dirname "$key")"
    install -d -o munge -g munge -m 0755 "$dir"
    if [ ! -s "$key" ]; then
        dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
        chown munge:munge "$key"
        chmod 0400 "$key"
    fi
    rm -f "$dir/munged.pid"
    runuser -u munge -- /usr/sbin/munged --force --key-file="$key" \
        --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
        --log-file="$dir/munged.log" --seed-file="$dir/munged.seed"
}
