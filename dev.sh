#!/usr/bin/env bash
# The README's two commands: `./dev.sh run` and `./dev.sh test`. Each sets up what it needs
# (Python venv, pinned Python and npm packages, Debian packages when missing) and is safe to
# repeat: a step runs again only when the files that define it change.
#   ./dev.sh run              serve on http://127.0.0.1:8000 with the embedded defaults
#   ./dev.sh test [pytest args]  lint and run the test suite, on a Redis of its own unless
#                                TWIN_TEST_REDIS_URL names one (without args: also the contract checks)
#   ./dev.sh forge ARGS       forge in contracts/ (solc-js through contracts/solc), e.g. `forge test`
#   ./dev.sh bench NAME       run bench/NAME.py
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PYTHON=${PYTHON:-python3}

say() { printf '==> %s\n' "$*" >&2; }

apt_install() {
  local missing=("$@")
  if [ "$(id -u)" -eq 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null; then
    say "installing Debian packages with sudo: ${missing[*]}"
    sudo apt-get update -qq >/dev/null
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "please install the Debian packages: ${missing[*]}"; exit 1
  fi
}

# Re-run a step only when the files it depends on changed since it last succeeded.
stale() {
  local stamp=$1; shift
  [ "$(cat "$stamp" 2>/dev/null)" != "$(cat "$@" | sha256sum)" ]
}
mark() { local stamp=$1; shift; mkdir -p "$(dirname "$stamp")"; cat "$@" | sha256sum > "$stamp"; }

setup_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
      apt_install "python3-venv"
    fi
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  if stale "$VENV/.installed" pyproject.toml constraints.txt; then
    say "installing Python packages (pinned by constraints.txt)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev]"
    mark "$VENV/.installed" pyproject.toml constraints.txt
  fi
}

setup_node() {
  command -v npm >/dev/null || apt_install nodejs npm
  if stale node_modules/.installed package.json package-lock.json; then
    say "installing npm packages (pinned by package-lock.json)"
    npm ci --no-audit --no-fund --loglevel=error
    mark node_modules/.installed package.json package-lock.json
  fi
}

# The contracts' own checks, after pytest: forge's unit, fuzz and invariant tests (default profile of
# contracts/foundry.toml: 100,000 calls per invariant suite), the coverage figure of the unit and fuzz
# suites, then Slither (triage: contracts/slither.db.json). Coverage and Slither build into directories of
# their own; everything compiles with solc-js through contracts/solc.
check_contracts() {
  say "forge test, forge coverage and slither (contracts/)"
  (cd contracts && ../node_modules/.bin/forge test &&
    FOUNDRY_OUT=coverage-out FOUNDRY_CACHE_PATH=coverage-cache FOUNDRY_FUZZ_RUNS=100 \
      ../node_modules/.bin/forge coverage --no-match-path 'test/invariant/*' --report summary &&
    FOUNDRY_OUT=slither-out FOUNDRY_CACHE_PATH=slither-cache PATH="$PWD/../node_modules/.bin:$PATH" \
      "../$VENV/bin/slither" . --config-file slither.config.json)
}

setup_browser() {
  # The end-to-end tests drive Debian's Chromium; no browser is downloaded at run time.
  [ -x /usr/bin/chromium ] || apt_install chromium
}

free_port() { "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The Redis tests' server: a throwaway redis-server on a free loopback port, keeping nothing on
# disk, in a temporary directory; it is stopped and the directory removed when this script exits,
# however it exits. TWIN_TEST_REDIS_URL tells the tests where it is.
start_test_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  TEST_REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/twin-test-redis.XXXXXX")
  trap stop_test_redis EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local port attempt
  for attempt in 1 2 3; do  # another process may take the free port before redis-server binds it
    port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$port" --dir "$TEST_REDIS_DIR" --save '' --appendonly no \
      --logfile "$TEST_REDIS_DIR/redis.log" &
    TEST_REDIS_PID=$!
    while kill -0 "$TEST_REDIS_PID" 2>/dev/null; do
      if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
        export TWIN_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
        say "test Redis at $TWIN_TEST_REDIS_URL (attempt $attempt), stopped on exit"
        return
      fi
      sleep 0.05
    done
  done
  say "redis-server did not start:"; cat "$TEST_REDIS_DIR/redis.log" >&2; exit 1
}

stop_test_redis() {
  if [ -n "${TEST_REDIS_PID:-}" ]; then
    kill "$TEST_REDIS_PID" 2>/dev/null || true
    wait "$TEST_REDIS_PID" 2>/dev/null || true
  fi
  rm -rf "$TEST_REDIS_DIR"
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  run)
    setup_python; setup_node
    exec "$VENV/bin/twin" serve "$@"
    ;;
  test)
    setup_python; setup_node; setup_browser
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/mypy" app
    [ -n "${TWIN_TEST_REDIS_URL:-}" ] || start_test_redis
    "$VENV/bin/pytest" "$@"  # not exec'd: the exit trap stops the test Redis afterwards
    [ $# -gt 0 ] || check_contracts
    ;;
  forge)
    setup_node
    cd contracts && exec ../node_modules/.bin/forge "$@"
    ;;
  bench)
    setup_python; setup_node
    name=${1:?usage: ./dev.sh bench NAME (one of: $(cd bench && ls *.py | sed 's/\.py$//' | tr '\n' ' '))}
    shift
    exec "$VENV/bin/python" "bench/$name.py" "$@"
    ;;
  *)
    echo "usage: ./dev.sh run | test [pytest args] | forge ARGS | bench NAME" >&2
    exit 2
    ;;
esac
