# shellcheck shell=bash
# Private single-node Slurm cluster on loopback, for tests.  Source this file,
# then:  slurm_start WORKDIR ... sbatch/squeue/scancel/sinfo ... slurm_stop
# Needs root and Debian's slurm-wlm + munge.  Everything (config, key, socket,
# state, spool, logs, pid files) lives under WORKDIR; nothing touches /etc.
# Safe under the caller's `set -euo pipefail`.

# A random port nothing uses, in any TCP state (TIME_WAIT included), so a
# restart right after a stop never collides with the previous run's ports.
_slurm_free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    [ "$p" != "${1:-}" ] && [ -z "$(ss -Htan "sport = :$p")" ] && { echo "$p"; return 0; }
  done
}

# A zombie counts as gone: daemons are reparented to PID 1, which reaps
# them when it gets round to it (here up to ~1.5 s later).
_slurm_alive() {
  [ -r "/proc/$1/stat" ] || return 1
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# Waits up to $2 tenths of a second for a file or a live pid, since every
# daemon forks before it writes its pid file or binds its socket.
_slurm_wait() {
  local what=$1 n=$2
  while [ "$n" -gt 0 ]; do
    case $what in
      /*) [ -e "$what" ] && return 0 ;;
      *) _slurm_alive "$what" || return 0 ;;
    esac
    sleep 0.1; n=$((n - 1))
  done
  return 1
}

_slurm_fail() {
  echo "slurm_start: $*" >&2
  tail -n 20 "$SLURM_LOCAL_DIR"/log/*.log >&2 2>/dev/null || true
  slurm_stop || true
  return 1
}

slurm_start() {
  local d=${1:?usage: slurm_start WORKDIR}
  if [ -n "${SLURM_LOCAL_DIR:-}" ] && [ -e "$SLURM_LOCAL_DIR/run/munged.pid" ]; then
    echo "slurm_start: already running under $SLURM_LOCAL_DIR (slurm_stop first)" >&2
    return 1
  fi
  mkdir -p "$d"; d=$(cd "$d" && pwd)
  # A fresh controller every time: old job records, node state and spooled
  # scripts from an earlier run would otherwise be recovered.
  rm -rf "$d/state" "$d/spool" "$d/run" "$d/munge" "$d/log"
  mkdir -p "$d/state" "$d/spool" "$d/run" "$d/log" "$d/munge"
  # munged wants the key's directory private and the socket's directory
  # searchable by all but writable by none but root.
  chmod 0700 "$d/munge"; chmod 0755 "$d/run"
  export SLURM_LOCAL_DIR=$d SLURM_CONF=$d/slurm.conf

  local node ctld_port slurmd_port mem sock=$d/run/munge.socket
  # slurmctld only runs where SlurmctldHost matches the hostname, and slurmd
  # finds its NodeName the same way; NodeAddr keeps all traffic on loopback.
  node=$(hostname -s)
  ctld_port=$(_slurm_free_port)
  slurmd_port=$(_slurm_free_port "$ctld_port")
  # Below MemTotal: slurmd drains a node that reports less than RealMemory.
  mem=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.95)}' /proc/meminfo)
  : > "$d/plugstack.conf"
  cat > "$SLURM_CONF" <<EOF
ClusterName=local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/run/slurmctld.pid
SlurmdPidFile=$d/run/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
PlugStackConfig=$d/plugstack.conf
# No systemd, no cgroups in a container: track jobs by parent pid.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
# slurmd and clients bind 127.0.0.1 (NodeAddr) instead of 0.0.0.0;
# slurmctld ignores this and always listens on all addresses.
CommunicationParameters=NoInAddrAny
# CR_CPU: one job per CPU, whatever the core/thread layout slurmd detects.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# sbatch jobs otherwise wait up to 3 s (batch_sched_delay) before starting.
SchedulerParameters=batch_sched_delay=0
# scancel: SIGTERM, then SIGKILL after KillWait s (default 30, too slow here).
KillWait=5
ReturnToService=2
# Debian has no /bin/mail by default; slurmctld logs an error without one.
MailProg=/bin/true
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

  # A throwaway key: the cluster shares no secret with anything else.
  dd if=/dev/urandom of="$d/munge/munge.key" bs=1 count=1024 status=none
  chmod 0400 "$d/munge/munge.key"
  # --origin: munged otherwise resolves the hostname and fails if it can't.
  munged --socket="$sock" --key-file="$d/munge/munge.key" \
    --pid-file="$d/run/munged.pid" --log-file="$d/log/munged.log" \
    --seed-file="$d/munge/munged.seed" --origin=127.0.0.1 ||
    { _slurm_fail "munged did not start"; return 1; }
  _slurm_wait "$sock" 50 || { _slurm_fail "no munge socket $sock"; return 1; }

  slurmctld || { _slurm_fail "slurmctld did not start"; return 1; }
  _slurm_wait "$d/run/slurmctld.pid" 100 || { _slurm_fail "slurmctld wrote no pid file"; return 1; }
  slurmd -N "$node" || { _slurm_fail "slurmd did not start"; return 1; }
  _slurm_wait "$d/run/slurmd.pid" 100 || { _slurm_fail "slurmd wrote no pid file"; return 1; }

  local n=300 state=
  while [ "$n" -gt 0 ]; do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && return 0
    sleep 0.1; n=$((n - 1))
  done
  _slurm_fail "node $node not idle after 30 s (state: '${state}')"
}

slurm_stop() {
  local d=${SLURM_LOCAL_DIR:-}
  [ -n "$d" ] || { echo "slurm_stop: no cluster (SLURM_LOCAL_DIR unset)" >&2; return 1; }
  local ids pid name
  # Jobs first, while slurmd is up to kill them: a job's slurmstepd outlives
  # slurmd and would keep the job's processes alive.
  if [ -e "$d/run/slurmctld.pid" ]; then
    ids=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$ids" ]; then
      # shellcheck disable=SC2086
      scancel $ids 2>/dev/null || true
      local n=150  # KillWait (5 s) plus margin
      while [ "$n" -gt 0 ] && [ -n "$(squeue -h -o %i 2>/dev/null || true)" ]; do
        sleep 0.1; n=$((n - 1))
      done
    fi
  fi
  local pids=()
  for name in slurmd slurmctld munged; do
    [ -e "$d/run/$name.pid" ] || continue
    pid=$(cat "$d/run/$name.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && _slurm_alive "$pid"; then
      kill "$pid" 2>/dev/null || true
      _slurm_wait "$pid" 100 || { kill -9 "$pid" 2>/dev/null || true; _slurm_wait "$pid" 20 || true; }
      pids+=("$pid")
    fi
    rm -f "$d/run/$name.pid"
  done
  # Any slurmstepd still there (job stuck past the wait above) belongs to us
  # only if it inherited our SLURM_CONF from our slurmd.
  for pid in $(pgrep -x slurmstepd || true); do
    if grep -qzx "SLURM_CONF=$d/slurm.conf" "/proc/$pid/environ" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$d/run/munge.socket" "$d/run/munge.socket.lock"
  # The daemons were reparented to PID 1, which may reap them a second or so
  # late; wait for that so a following pgrep sees no <defunct> entries.
  local n=50
  for pid in ${pids[@]+"${pids[@]}"}; do
    while [ -e "/proc/$pid" ] && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
  done
  unset SLURM_LOCAL_DIR
  return 0
}
