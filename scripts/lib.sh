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
