# shellcheck shell=bash
# `loom cluster` end to end, sourced by scripts/test after the build: a real
# redis-server on a free port, then (1) config errors named with their path,
# (2) --launcher local and (3) a private single-node Slurm (slurm_local.sh):
# up places two worker groups, a job completes on them, down leaves no
# loom process behind. Needs root for Slurm.
source "$(dirname "${BASH_SOURCE[0]}")/slurm_local.sh"

_cluster_fail() { echo "cluster check failed: $*" >&2; exit 1; }

_cluster_no_loom_left() {
  # Zombies awaiting PID 1's reaping are gone already.
  local left
  left=$(ps -eo stat=,args= | awk '$1 !~ /^Z/ && $2 ~ /loom-(server|worker)$/' | grep -F -- "$1" || true)
  [ -z "$left" ] || _cluster_fail "processes left after down: $left"
}

_cluster_job() {
  local state=$1 work=$2 url key
  url=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['servers'][1]['url'])" "$state/state.json")
  key=$("$BUILD/bin/loom-server" keys create check --redis "$REDIS_URL" | tail -n 1)
  "$BUILD/bin/loom" trace gpt2-tiny --remote --no-cache --host "$url" --api-key "$key" \
    --inputs "$work/inputs.safetensors" --save transformer.h.0.output.0 -o "$work/remote.safetensors" > /dev/null
  "$BUILD/bin/loom" trace "$work/gpt2-tiny" --inputs "$work/inputs.safetensors" \
    --save transformer.h.0.output.0 -o "$work/local.safetensors" > /dev/null
  # Same tensors, bitwise (the files' headers may order or annotate them differently).
  python3 - "$work/remote.safetensors" "$work/local.safetensors" <<'PY' || _cluster_fail "remote result differs from local"
import json, struct, sys
def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    head = json.loads(data[8:8 + n]); body = data[8 + n:]
    return {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in head.items() if k != "__metadata__"}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
sys.exit(0 if a == b and a else 1)
PY
}

run_cluster_checks() {
  local work="$BUILD/test-cluster" port
  rm -rf "$work"; mkdir -p "$work"
  "$BUILD/bin/loom" make-checkpoint "$work/gpt2-tiny" --seed 11 > /dev/null
  "$BUILD/bin/loom" make-inputs "$work/inputs.safetensors" --batch 1 --seq 8 --vocab 1000 --seed 5 > /dev/null
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --daemonize yes --pidfile "$work/redis.pid" > /dev/null
  REDIS_URL="redis://127.0.0.1:$port"
  trap 'kill "$(cat "$work/redis.pid")" 2>/dev/null || true; slurm_stop > /dev/null 2>&1 || true' RETURN

  echo "== loom cluster: config errors name their path"
  local bad
  for bad in 'nodes: "2"|cluster.workers[0].nodes: must be an integer' \
             'gpus: 1|cluster.workers[0]: unknown field "gpus"' \
             'models: [{key: m, path: p, device: "cuda:0"}]|cluster.workers[0].models[0].device: cuda:0 needs gpus_per_node >= 1'; do
    printf 'cluster: {redis: "%s", blob_dir: b, workers: [{name: w, models: [{key: m, path: p}], %s}]}\n' \
      "$REDIS_URL" "${bad%%|*}" | sed 's/models: \[{key: m, path: p}\], models:/models:/' > "$work/bad.yaml"
    local err rc=0
    err=$("$BUILD/bin/loom" cluster up "$work/bad.yaml" --state-dir "$work/bad-state" 2>&1) || rc=$?
    [ "$rc" = 2 ] || _cluster_fail "bad config (${bad%%|*}) exited $rc, not 2: $err"
    grep -qF -- "${bad#*|}" <<< "$err" || _cluster_fail "bad config error does not say '${bad#*|}': $err"
  done

  cat > "$work/cluster.yaml" <<YAML
cluster:
  name: check
  redis: $REDIS_URL
  blob_dir: blobs
  servers: {count: 2, listen: "127.0.0.1:0"}
  workers:
    - {name: a, models: [{key: gpt2-tiny, path: gpt2-tiny}], cpus_per_task: 1, time: "00:10:00"}
    - {name: b, models: [{key: gpt2-tiny, path: gpt2-tiny}], cpus_per_task: 1, env: {LOOM_CHECK: "it's"}}
YAML
  local launcher
  for launcher in local slurm; do
    echo "== loom cluster up/status/down --launcher $launcher"
    [ "$launcher" = slurm ] && slurm_start "$work/slurm"
    "$BUILD/bin/loom" cluster up "$work/cluster.yaml" --launcher "$launcher" --wait 120 \
      --state-dir "$work/state-$launcher" || _cluster_fail "up ($launcher)"
    "$BUILD/bin/loom" cluster status --state-dir "$work/state-$launcher" || _cluster_fail "status ($launcher)"
    _cluster_job "$work/state-$launcher" "$work"
    "$BUILD/bin/loom" cluster down --state-dir "$work/state-$launcher" || _cluster_fail "down ($launcher)"
    _cluster_no_loom_left "$work/state-$launcher"
    [ ! -e "$work/state-$launcher/state.json" ] || _cluster_fail "state.json left after down"
    [ "$launcher" = slurm ] && slurm_stop
  done
  echo "== loom cluster: both launchers passed"
}
