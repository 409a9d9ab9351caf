# Shared by the jobs/ scripts: install what splitinfer needs on a fresh
# Debian machine, configure and build it, and run it under mpirun.
# Source it; it sets SPLITINFER_ROOT and SPLITINFER_BUILD.

SPLITINFER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SPLITINFER_BUILD=${SPLITINFER_BUILD:-$SPLITINFER_ROOT/build}
PYTHON=/usr/bin/python3  # Debian's interpreter, the one with python3-torch

# Debian packages: build tools (and procps: the tests look for processes), the C++ dependencies, PyTorch for the
# exporter and references, ONNX for the ONNX import, matplotlib for
# jobs/plot, and the Fashion-MNIST data set.
SPLITINFER_PACKAGES=(
  g++ make cmake pkg-config procps
  openmpi-bin libopenmpi-dev libhdf5-dev libcli11-dev nlohmann-json3-dev libstb-dev
  libgtest-dev libbenchmark-dev zlib1g-dev
  python3 python3-numpy python3-h5py python3-torch python3-torchvision python3-onnx python3-matplotlib python3-pil
  dataset-fashion-mnist
)

log() { printf '==> %s\n' "$*"; }

ensure_packages() {
  local missing=()
  for package in "${SPLITINFER_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ensure_onnxruntime: ONNX Runtime, the reference of the ONNX import
# (models/ort_reference.py), is npm's onnxruntime-node, installed once into
# $SPLITINFER_BUILD/npm (where ort_reference.py looks) with Debian's Node.js.
# --ignore-scripts: its install script only downloads GPU libraries.
SPLITINFER_ORT_VERSION=1.31.1
ensure_onnxruntime() {
  local dir=$SPLITINFER_BUILD/npm
  [ -f "$dir/node_modules/onnxruntime-node/package.json" ] && return 0
  command -v node >/dev/null || SPLITINFER_PACKAGES+=(nodejs)
  command -v npm >/dev/null || SPLITINFER_PACKAGES+=(npm)
  ensure_packages
  log "installing onnxruntime-node $SPLITINFER_ORT_VERSION into $dir"
  mkdir -p "$dir"
  (cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error \
    "onnxruntime-node@$SPLITINFER_ORT_VERSION" >/dev/null)
}

# ensure_build [cmake -D options...]: configure once, then build incrementally.
# The options apply to the build directory from then on (jobs/test turns the
# tests on); the jobs that need no tests use ensure_build_without_tests.
ensure_build() {
  if [ ! -f "$SPLITINFER_BUILD/CMakeCache.txt" ]; then
    log "configuring $SPLITINFER_BUILD"
    cmake -S "$SPLITINFER_ROOT" -B "$SPLITINFER_BUILD" -DCMAKE_BUILD_TYPE=Release "$@"
  elif [ $# -gt 0 ]; then
    cmake "$SPLITINFER_BUILD" "$@" >/dev/null
  fi
  log "building"
  cmake --build "$SPLITINFER_BUILD" -j "$(nproc)"
}

# ensure_build_without_tests: ensure_build, configuring a new build directory
# without the tests; one that builds them goes on building them, so a later
# ctest there never meets a test binary older than the code.
ensure_build_without_tests() {
  if [ -f "$SPLITINFER_BUILD/CMakeCache.txt" ]; then
    ensure_build
  else
    ensure_build -DSPLITINFER_TESTS=OFF
  fi
}

# OpenMPI refuses root without these; a container or CI runner is often root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Idle ranks yield the core instead of busy-polling it, so a rank that waits
# does not slow the ranks that compute (there are often more ranks than cores).
export OMPI_MCA_mpi_yield_when_idle=1
# Ranks on one machine (or over TCP) talk through the ob1 messaging layer and
# its shared-memory and TCP transports. Left to choose, every rank first
# probes the fabric libraries (libfabric, PSM), which costs each run 0.2 s
# of waiting (a fifth of a small run, hundreds of runs in jobs/test). A
# cluster with a fast fabric sets OMPI_MCA_pml itself (e.g. ucx).
export OMPI_MCA_pml=${OMPI_MCA_pml:-ob1}
# Pieces up to 64 KiB between ranks on one machine go eagerly: a halo (rows of
# all channels, strided) is then copied out when it is posted, and arrives
# while its sender computes. Larger strided pieces move in fragments, each
# waiting for the sender to poll: a halo could wait a whole layer.
export OMPI_MCA_btl_vader_eager_limit=${OMPI_MCA_btl_vader_eager_limit:-65536}

# PMIx (OpenMPI's launch and wire-up layer, in mpirun and every rank) runs the
# system's libevent, which picks epoll. When a rank ends while mpirun tears
# the job down (a refused input, MPI_Abort), epoll can find a descriptor
# already closed and print "[warn] Epoll MOD(1) on fd N failed ... Bad file
# descriptor" on stderr, a second line beside splitinfer's one (seen under
# load). libevent's poll backend has no such message; OpenMPI's own event
# loop already uses poll.
export EVENT_NOEPOLL=1

# splitinfer_mpirun RANKS ARGS...: run `splitinfer ARGS...` on RANKS ranks.
# splitinfer_mpirun --app FILE: run the ranks an OpenMPI app file lists
# (a line per rank or group: "-np 1 .../splitinfer run ...").
#
# OpenMPI 4.1's mpirun (with Debian's PMIx 4) can deadlock in
# PMIx_server_finalize once its ranks have ended, most often after a refused
# run's MPI_Abort: its main thread joins PMIx's progress thread, which waits
# on a lock forever, and the ranks stay unreaped zombies (seen in about one
# of a few hundred refused runs under load). So a watcher in the background
# looks at mpirun once a second (mpirun itself runs in the foreground, where
# Ctrl-C reaches it): when every rank it started has ended and it has not
# reaped them within 5 s, the watcher kills it, and the status is the ranks'
# own (read from /proc before they are gone: the first non-zero exit code,
# or 128 + the signal that killed one).
#
# In the same place mpirun can also crash (SIGSEGV; about one in a hundred
# refused runs of 4 ranks under load). Its stack trace goes to a file of its
# own (the ranks' still to stderr), and the run's status is the one splitinfer
# wrote to SPLITINFER_STATUS_FILE before it ended (src/runtime/exit_status.hpp):
# a crash after that is mpirun's teardown, not the run's, and is not shown;
# a crash before it is shown, with mpirun's status.
splitinfer_mpirun() {
  # This shell's pid, taken here: in the arguments of a background command,
  # $BASHPID would already be the background process's own.
  local shell=$BASHPID scratch verdict
  scratch=$(mktemp -d)
  verdict=$scratch/verdict
  : >"$verdict"
  # The ranks' environment (mpirun's own stack traces go to a file, theirs
  # to stderr); an app file's lines take it each (mpirun applies a global
  # -x VAR=VALUE to -np runs only).
  local ranks_env=(-x SPLITINFER_STATUS_FILE -x OMPI_MCA_opal_stacktrace_output=stderr) launch
  if [ "$1" = --app ]; then
    sed "/^[[:space:]]*-/s|^|${ranks_env[*]} |" "$2" >"$scratch/app"
    launch=(--app "$scratch/app")
  else
    launch=("${ranks_env[@]}" -np "$1" "$SPLITINFER_BUILD/splitinfer" "${@:2}")
  fi
  # The watcher ends by itself once the verdict file is gone (not killed,
  # which bash could report as a line of its own), and holds neither output.
  _splitinfer_watch_mpirun "$shell" "$verdict" </dev/null >/dev/null 2>&1 &
  local status=0
  # In a subshell whose own stderr is /dev/null, so that bash's "Killed" for
  # an mpirun the watcher ended is not a second line beside splitinfer's
  # (mpirun's stderr is the caller's, through descriptor 4; the `exit` keeps
  # bash from running mpirun in the subshell's place).
  (SPLITINFER_STATUS_FILE=$scratch/status OMPI_MCA_opal_stacktrace_output=file:$scratch/mpirun \
    mpirun --quiet --oversubscribe --mca orte_abort_on_non_zero_status 0 \
    "${launch[@]}" 2>&4
    exit $?) 4>&2 2>/dev/null || status=$?
  if [ -s "$verdict" ]; then
    status=$(cat "$verdict")
  elif compgen -G "$scratch/mpirun*" >/dev/null; then  # mpirun itself crashed
    if [ -s "$scratch/status" ]; then status=$(cat "$scratch/status"); else cat "$scratch"/mpirun* >&2; fi
  fi
  rm -rf "$scratch"
  return "$status"
}

# _splitinfer_watch_mpirun SHELL VERDICT: splitinfer_mpirun's watcher of the
# mpirun that the shell SHELL runs (in a subshell); writes the ranks' status to VERDICT when
# it kills a deadlocked mpirun. Ends when VERDICT is removed, or with SHELL.
_splitinfer_watch_mpirun() {
  local shell=$1 verdict=$2 launcher= ended_at=0 status child children fields code
  while [ -e "$verdict" ] && kill -0 "$shell" 2>/dev/null; do
    sleep 1
    if [ -z "$launcher" ]; then  # mpirun: a child of one of the shell's children
      for child in $(pgrep -P "$shell"); do launcher=$(pgrep -P "$child" -x mpirun) && break; done
      [ -n "$launcher" ] || continue
    fi
    children=$(pgrep -P "$launcher") || { ended_at=0; continue; }
    status=0
    for child in $children; do
      # /proc/PID/stat after the command's ")": field 3 the state, 52 the exit code.
      fields=$(sed 's/.*) //' "/proc/$child/stat" 2>/dev/null) || continue
      set -- $fields
      if [ "$1" != Z ]; then
        ended_at=0
        continue 2
      fi
      code=${50:-0}
      if [ "$status" -eq 0 ] && [ "$code" -ne 0 ]; then
        status=$(( (code & 127) ? 128 + (code & 127) : (code >> 8) & 255 ))
      fi
    done
    [ "$ended_at" -ne 0 ] || ended_at=$SECONDS
    if [ $((SECONDS - ended_at)) -ge 5 ]; then
      [ -e "$verdict" ] && echo "$status" >"$verdict"
      kill -KILL "$launcher" 2>/dev/null || true
      return 0
    fi
  done
}
