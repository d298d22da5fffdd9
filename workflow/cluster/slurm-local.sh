#!/usr/bin/env bash
# A real single-node SLURM cluster on this host, to run the pipeline through profiles/slurm and
# to test that profile: this machine's cores and memory as one node, partition `cpu` (plus `gpu`
# with `gres` where the host has NVIDIA GPUs), job accounting in slurmdbd on a private MariaDB
# (the Snakemake SLURM executor plugin polls job states with `sacct` and checks the account with
# `sacctmgr`), account `slide-bench` for root (and $SUDO_USER).
#
#   workflow/cluster/slurm-local.sh start    install (apt) if needed, configure, start, wait idle
#   workflow/cluster/slurm-local.sh status   daemons, node state, partitions; exit 1 if not up
#   workflow/cluster/slurm-local.sh stop     cancel the cluster's jobs, stop every daemon
#
# Idempotent: `start` on a running cluster only checks it; `stop` on a stopped one does nothing.
# Needs root and, if the packages are missing, apt-get (Debian's slurm-wlm, munge, slurmdbd,
# mariadb-server). Where the host cannot run it, it prints one line `slurm-local: cannot run
# here: ...` and exits 3; any other failure prints `slurm-local: error: ...` and exits 1.
#
# It writes /etc/slurm/{slurm,slurmdbd,gres}.conf (the paths every SLURM command reads) and
# refuses to touch a slurm.conf it did not write. State, logs and pid files live under
# $SLURM_LOCAL_DIR (default /var/lib/slurm-local); daemon logs are in $SLURM_LOCAL_DIR/log.
# Everything listens on or talks to 127.0.0.1 only (MariaDB on port $SLURM_LOCAL_DB_PORT,
# default 3406; SLURM on its default ports 6817-6819).
set -euo pipefail

STATE=${SLURM_LOCAL_DIR:-/var/lib/slurm-local}
DB_PORT=${SLURM_LOCAL_DB_PORT:-3406}
CONF_DIR=/etc/slurm
CLUSTER=slidelocal
ACCOUNT=slide-bench
MARKER="# Written by slide-bench workflow/cluster/slurm-local.sh"
LOG=$STATE/log
RUN=$STATE/run
DB_DIR=$STATE/mariadb
DB_RUN=$STATE/mariadb-run
DB_SOCK=$DB_RUN/mariadb.sock
PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)
NEEDED=(munged slurmctld slurmd slurmdbd sbatch sacct sacctmgr sinfo mariadbd mariadb-install-db)

cannot() { echo "slurm-local: cannot run here: $*" >&2; exit 3; }
die() { echo "slurm-local: error: $*" >&2; exit 1; }
say() { echo "slurm-local: $*"; }

# pid of a running daemon from its pid file, or nothing
running_pid() {
    local file=$1 name=$2 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
        && grep -q "$name" "/proc/$pid/comm" 2>/dev/null; then
        echo "$pid"
    fi
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds
    local limit=$1 what=$2 i
    shift 2
    for ((i = 0; i < limit * 4; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    die "$what did not happen within ${limit}s (logs: $LOG)"
}

stop_pid() {  # stop_pid PIDFILE NAME: SIGTERM, wait up to 30 s, then SIGKILL
    local pid i
    pid=$(running_pid "$1" "$2")
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
        sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$1"
}

check_host() {
    [ "$(uname -s)" = Linux ] || cannot "SLURM's daemons need Linux (this is $(uname -s))"
    [ "$(id -u)" = 0 ] || cannot "it must run as root (it installs packages and starts daemons)"
    if [ -f "$CONF_DIR/slurm.conf" ] && ! head -n 1 "$CONF_DIR/slurm.conf" | grep -qF "$MARKER"
    then
        cannot "$CONF_DIR/slurm.conf exists and was not written by this script (a real cluster?)"
    fi
}

install_packages() {
    local missing=() tool
    for tool in "${NEEDED[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$tool" \
            >/dev/null 2>&1 || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 \
        || cannot "${missing[*]} missing and no apt-get to install ${PACKAGES[*]}"
    mkdir -p "$LOG"
    say "installing ${PACKAGES[*]} with apt-get (missing: ${missing[*]})"
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${PACKAGES[@]}"; } >"$LOG/apt.log" 2>&1; then
        tail -n 5 "$LOG/apt.log" >&2
        die "apt-get could not install ${PACKAGES[*]} (full log: $LOG/apt.log)"
    fi
}

# The node line of slurm.conf from what slurmd detects (sockets, cores, threads, memory); the
# memory is declared at 95% of what it sees, so a slightly different reading at the next start
# does not drain the node for "Low RealMemory".
node_line() {
    local detected mem gres=$1
    detected=$(slurmd -C | head -n 1) || die "slurmd -C could not describe this host"
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")
    [ -n "$mem" ] || die "slurmd -C printed no RealMemory: $detected"
    detected=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 95 / 100))/" <<<"$detected")
    detected=$(sed "s/^NodeName=[^ ]*/NodeName=$(hostname -s) NodeAddr=127.0.0.1/" <<<"$detected")
    echo "$detected${gres:+ Gres=gpu:$gres} State=UNKNOWN"
}

gpu_count() {
    local n=0
    if command -v nvidia-smi >/dev/null 2>&1; then
        n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
    elif compgen -G '/dev/nvidia[0-9]*' >/dev/null; then
        n=$(compgen -G '/dev/nvidia[0-9]*' | wc -l)
    fi
    echo "$n"
}

write_config() {
    local host gpus db_pass tmp
    host=$(hostname -s)
    gpus=$(gpu_count)
    [ "$gpus" -gt 0 ] || gpus=
    mkdir -p "$CONF_DIR" "$LOG" "$RUN" "$STATE/ctld" "$STATE/slurmd"
    chown slurm:slurm "$LOG" "$STATE/ctld"
    chmod 755 "$RUN"
    # Job processes are tracked in a cgroup (v1 freezer) where the host has one, so that a
    # cancelled or requeued job leaves no orphan behind; otherwise through /proc.
    local proctrack=proctrack/linuxproc proctrack_note="No cgroup v1 freezer here: job processes tracked through /proc."
    if [ -d /sys/fs/cgroup/freezer ]; then
        proctrack=proctrack/cgroup
        proctrack_note="Every process of a job in its cgroup: cancelling or requeueing a job ends them all."
        printf '%s\nCgroupPlugin=cgroup/v1\nCgroupAutomount=yes\nConstrainCores=no\nConstrainRAMSpace=no\n' \
            "$MARKER" >"$CONF_DIR/cgroup.conf"
    else
        rm -f "$CONF_DIR/cgroup.conf"
    fi
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
$MARKER (edits are overwritten).
# One node (this host) in partition cpu$([ -n "$gpus" ] && echo ", and in partition gpu with $gpus GPU(s)").
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
# $proctrack_note
ProctrackType=$proctrack
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# Cores and memory are consumable: a job gets the CPUs and the memory it asks for.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
# Accounting in slurmdbd: sacct answers for finished jobs, jobs need a valid account.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MinJobAge=300
# A cancelled, requeued or preempted job gets SIGTERM, then SIGKILL after this many seconds.
KillWait=5
# \`stop\` lowers this to 1 so that SLURM commands fail at once while the cluster is down.
MessageTimeout=10
$([ -n "$gpus" ] && echo "GresTypes=gpu")
$(node_line "$gpus")
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
$([ -n "$gpus" ] && echo "PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP")
EOF
    install -m 644 "$tmp" "$CONF_DIR/slurm.conf"
    rm -f "$tmp"
    if [ -n "$gpus" ]; then
        printf '%s\nNodeName=%s Name=gpu File=/dev/nvidia[0-%d]\n' "$MARKER" "$host" \
            $((gpus - 1)) >"$CONF_DIR/gres.conf"
    else
        rm -f "$CONF_DIR/gres.conf"
    fi

    # The database password of slurmdbd: made once, readable by root and the slurm user only.
    if [ ! -s "$STATE/db.pass" ]; then
        (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$STATE/db.pass")
    fi
    db_pass=$(cat "$STATE/db.pass")
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
$MARKER (edits are overwritten).
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
EOF
    install -m 600 -o slurm -g slurm "$tmp" "$CONF_DIR/slurmdbd.conf"
    rm -f "$tmp"
}

start_munge() {
    if [ -n "$(running_pid /run/munge/munged.pid munged)" ] && munge -n >/dev/null 2>&1; then
        return 0
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1
    touch "$RUN/munged.ours"
    wait_for 20 "munged answering" sh -c 'munge -n | unmunge'
}

db() { mariadb --no-defaults --socket="$DB_SOCK" -u root "$@"; }

start_mariadb() {
    if [ -z "$(running_pid "$DB_RUN/mariadb.pid" mariadbd)" ]; then
        # the server runs as user mysql: its socket, pid file and log are in a folder of its own
        mkdir -p "$DB_DIR" "$DB_RUN"
        chown mysql:mysql "$DB_DIR" "$DB_RUN"
        if [ ! -d "$DB_DIR/mysql" ]; then
            mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" \
                --auth-root-authentication-method=socket --skip-test-db \
                >"$LOG/mariadb-install.log" 2>&1 \
                || die "mariadb-install-db failed (log: $LOG/mariadb-install.log)"
        fi
        # Settings SLURM's accounting documentation recommends, small buffers for a test host.
        setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB_DIR" \
            --socket="$DB_SOCK" --pid-file="$DB_RUN/mariadb.pid" --port="$DB_PORT" \
            --bind-address=127.0.0.1 --skip-name-resolve --log-error="$DB_RUN/mariadb.log" \
            --innodb-buffer-pool-size=128M --innodb-log-file-size=64M \
            --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
        wait_for 60 "MariaDB answering on $DB_SOCK (log: $DB_RUN/mariadb.log)" db -e 'SELECT 1'
    fi
    local pass
    pass=$(cat "$STATE/db.pass")
    db -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
           ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
           GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_slurmdbd() {
    if [ -z "$(running_pid "$RUN/slurmdbd.pid" slurmdbd)" ]; then
        /usr/sbin/slurmdbd </dev/null >/dev/null 2>&1
    fi
    wait_for 60 "slurmdbd answering" sacctmgr -n list cluster
}

# The cluster, the account and its users in the accounting database (each added once).
setup_accounts() {
    local user users=(root)
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then users+=("$SUDO_USER"); fi
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if ! sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT"; then
        sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" \
            Description="slide-bench pipeline" Organization=slide-bench >/dev/null
    fi
    for user in "${users[@]}"; do
        if ! sacctmgr -n -P list association cluster="$CLUSTER" account="$ACCOUNT" \
            user="$user" format=user | grep -qx "$user"; then
            sacctmgr -i add user "$user" Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
        fi
    done
}

node_state() { sinfo -h -N -n "$(hostname -s)" -o '%t' 2>/dev/null | head -n 1; }

start_slurm() {
    [ -n "$(running_pid "$RUN/slurmctld.pid" slurmctld)" ] \
        || /usr/sbin/slurmctld </dev/null >/dev/null 2>&1
    wait_for 60 "slurmctld answering" scontrol ping
    [ -n "$(running_pid "$RUN/slurmd.pid" slurmd)" ] \
        || /usr/sbin/slurmd </dev/null >/dev/null 2>&1
    local i state=
    for ((i = 0; i < 240; i++)); do
        state=$(node_state)
        case "$state" in
            idle | alloc | mix) return 0 ;;
            drain* | drng | fail*) break ;;
        esac
        # a node left down by an unclean stop comes back once slurmd has registered
        if [ "$state" = down ] && ((i == 20)); then
            scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
        fi
        sleep 0.25
    done
    die "node $(hostname -s) is '${state:-unknown}', not idle: $(sinfo -h -R -o '%E' | head -n 1) (logs: $LOG)"
}

status() {
    local name file rc=0 pid
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        case $name in
            munged) file=/run/munge/munged.pid ;;
            mariadbd) file=$DB_RUN/mariadb.pid ;;
            *) file=$RUN/$name.pid ;;
        esac
        pid=$(running_pid "$file" "$name")
        if [ -n "$pid" ]; then echo "$name: running (pid $pid)"; else echo "$name: stopped"; rc=1; fi
    done
    if [ $rc = 0 ]; then
        sinfo -N -o '%N %P %t %c %m %G'
        case "$(node_state)" in idle | alloc | mix) ;; *) rc=1 ;; esac
    fi
    return $rc
}

stop() {
    if [ -n "$(running_pid "$RUN/slurmctld.pid" slurmctld)" ]; then
        # the cluster's own jobs end with it
        squeue -h -o '%A' 2>/dev/null | xargs -r scancel 2>/dev/null || true
    fi
    stop_pid "$RUN/slurmd.pid" slurmd
    stop_pid "$RUN/slurmctld.pid" slurmctld
    stop_pid "$RUN/slurmdbd.pid" slurmdbd
    stop_pid "$DB_RUN/mariadb.pid" mariadbd
    # While the cluster is down, SLURM commands fail at once instead of retrying for
    # MessageTimeout seconds: the SLURM executor plugin runs `scontrol show config` whenever
    # Snakemake loads it, so every snakemake command on this host would wait 10 s otherwise.
    if [ -f "$CONF_DIR/slurm.conf" ]; then
        sed -i '/^MessageTimeout=/d' "$CONF_DIR/slurm.conf"
        echo "MessageTimeout=1" >>"$CONF_DIR/slurm.conf"
    fi
    # munged only if this script started it (a host's own munged may serve others)
    if [ -f "$RUN/munged.ours" ]; then
        stop_pid /run/munge/munged.pid munged
        rm -f "$RUN/munged.ours"
    fi
    say "stopped"
}

# What the configuration is made from: this script and the host's hardware.
config_stamp() {
    { sha256sum "$0" | cut -d' ' -f1; slurmd -C | head -n 1; gpu_count; } | sha256sum | cut -d' ' -f1
}

start() {
    check_host
    install_packages
    if status >/dev/null 2>&1; then
        if [ "$(cat "$STATE/config.stamp" 2>/dev/null)" = "$(config_stamp)" ]; then
            say "already running: $(sinfo -h -N -o '%N %t %c CPUs %m MB')"
            return 0
        fi
        say "configuration changed: restarting"
        stop >/dev/null
    fi
    write_config
    config_stamp >"$STATE/config.stamp"
    start_munge
    start_mariadb
    start_slurmdbd
    setup_accounts
    start_slurm
    say "up: $(sinfo -h -N -o 'node %N, partition %P, %t, %c CPUs, %m MB')" \
        "(SLURM $(sinfo -V | awk '{print $2}'), account $ACCOUNT)"
}

case "${1:-}" in
    start) start ;;
    stop)
        [ "$(id -u)" = 0 ] || cannot "it must run as root (it stops system daemons)"
        stop
        ;;
    status) status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
