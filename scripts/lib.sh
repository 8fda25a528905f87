# Shared by scripts/test, scripts/demo and scripts/bench: install the Debian
# packages loom needs (only those missing), then configure and build into
# build/ (cmake and make rebuild only what changed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"

LOOM_PACKAGES=(
  cmake g++ make pkg-config
  libboost-dev libwebsocketpp-dev libcapnp-dev capnproto libzstd-dev
  libtorch-dev libopenblas0-pthread python3-torch
  libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev nlohmann-json3-dev libsqlite3-dev libcli11-dev libyaml-cpp-dev
  libpcre2-dev nodejs
  libhiredis-dev redis-server slurm-wlm munge
)

install_deps() {
  local missing=()
  for p in "${LOOM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: these packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -y
  apt-get install -y --no-install-recommends "${missing[@]}"
}

build_loom() {
  # Configuring again is cheap and resets options a manual configure changed.
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLOOM_BUILD_TESTS=ON -DLOOM_BUILD_EXAMPLES=ON -DLOOM_BUILD_BENCH=ON > /dev/null
  # Two cores: more jobs only thrash (torch headers are heavy).
  cmake --build "$BUILD" -j "${LOOM_JOBS:-2}"
}

# Starts loom-server on loopback serving the checkpoint DIR as "gpt2-tiny",
# with its data under WORK/server-data; exports LOOM_HOST and LOOM_API_KEY
# and sets SERVER_PID. stop_server ends it (an EXIT trap calls it too).
start_server() {
  local checkpoint="$1" work="$2"
  local data="$work/server-data"
  rm -rf "$data"
  mkdir -p "$work"
  printf '{"models": [{"key": "gpt2-tiny", "path": "%s", "device": "cpu"}]}\n' "$checkpoint" > "$work/models.json"
  LOOM_API_KEY="$("$BUILD/bin/loom-server" keys create demo --data-dir "$data" | tail -n 1)"
  export LOOM_API_KEY
  "$BUILD/bin/loom-server" --models "$work/models.json" --data-dir "$data" --listen 127.0.0.1:0 \
    > "$work/server.out" 2> "$work/server.err" &
  SERVER_PID=$!
  trap stop_server EXIT
  for _ in $(seq 100); do grep -q "^listening on" "$work/server.out" && break; sleep 0.1; done
  LOOM_HOST="$(sed -n 's/^listening on //p' "$work/server.out")"
  export LOOM_HOST
  [ -n "$LOOM_HOST" ] || { echo "loom-server did not start:"; cat "$work/server.err"; exit 1; }
  echo "server at $LOOM_HOST"
}

stop_server() {
  if [ -n "${SERVER_PID:-}" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

# The remote examples, against the server start_server started, compared
# with local runs on the same CHECKPOINT.
run_remote_examples() {
  local checkpoint="$1"
  echo "-- example-remote-trace (remote blocking, remote non-blocking, local)"
  LOOM_MODEL=gpt2-tiny LOOM_MODEL_PATH="$checkpoint" "$BUILD/bin/example-remote-trace"
  echo "-- example-hybrid-stream (the server streams attention to a local callback; remote == local)"
  LOOM_MODEL=gpt2-tiny LOOM_MODEL_PATH="$checkpoint" "$BUILD/bin/example-hybrid-stream"
}

# Installs loom into a temporary prefix, then configures, builds and runs
# examples/downstream against it with find_package(loom).
check_install() {
  local tmp
  tmp="$(mktemp -d)"
  echo "== cmake --install into $tmp/prefix; examples/downstream with find_package(loom)"
  cmake --install "$BUILD" --prefix "$tmp/prefix" > "$tmp/install.log"
  cmake -S "$ROOT/examples/downstream" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$tmp/configure.log" || { cat "$tmp/configure.log"; exit 1; }
  cmake --build "$tmp/build" -j "${LOOM_JOBS:-2}" > "$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }
  "$tmp/build/downstream"
  rm -rf "$tmp"
}
