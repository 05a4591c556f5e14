#!/usr/bin/env bash
# Embedded Milvus 2.3.5 standalone (PyPI `milvus`) for apksift's Milvus backend tests.
#
#   bash .ci/milvus.sh start    # install (once) and start on 127.0.0.1:$MILVUS_PORT; idempotent
#   bash .ci/milvus.sh stop     # stop the server this script started (by its PIDs)
#   bash .ci/milvus.sh status   # exit 0 when running
#
# Env: APKSIFT_MILVUS_HOME (venv, data, logs; default ~/.cache/apksift-milvus),
#      MILVUS_PORT (default 19530), MILVUS_START_TIMEOUT (seconds, default 180).
# Startup takes 10-25 s and the server uses about 1 GB of RAM. Each fresh start wipes
# the previous data directory: tests create and drop their own collections.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MHOME="${APKSIFT_MILVUS_HOME:-$HOME/.cache/apksift-milvus}"
PORT="${MILVUS_PORT:-19530}"
VENV="$MHOME/venv"
BASE="$MHOME/base"
PIDF="$MHOME/launcher.pid"
LOG="$MHOME/launcher.log"
TIMEOUT="${MILVUS_START_TIMEOUT:-180}"

# The working pins: milvus 2.3.5 is the newest manylinux wheel; pymilvus 2.3 needs the rest to import.
PINS=("milvus==2.3.5" "pymilvus>=2.3,<2.4" "setuptools<70" "protobuf>=4.21,<5" "numpy<2" "pandas<2.3"
      "marshmallow<4" "environs<10")

alive() { [ -s "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
ready() { alive && [ -e "$BASE/ready" ] && port_open; }

install() {
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import milvus, pymilvus' 2>/dev/null; then
    echo "milvus.sh: installing embedded Milvus into $VENV"
    mkdir -p "$MHOME"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
  fi
}

start() {
  if ready; then
    echo "milvus.sh: already running on 127.0.0.1:$PORT (launcher pid $(cat "$PIDF"))"
    return 0
  fi
  if alive; then
    echo "milvus.sh: launcher $(cat "$PIDF") alive but not ready; waiting"
  else
    install
    if port_open; then
      echo "milvus.sh: port $PORT is taken by another process; set MILVUS_PORT" >&2
      return 1
    fi
    rm -rf "$BASE"
    mkdir -p "$BASE"
    setsid nohup "$VENV/bin/python" "$HERE/milvus_server.py" "$BASE" "$PORT" >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDF"
    echo "milvus.sh: starting (launcher pid $!, log $LOG)"
  fi
  local t0=$SECONDS
  while ! ready; do
    if ! alive; then
      echo "milvus.sh: launcher exited; log follows" >&2
      tail -n 30 "$LOG" >&2 || true
      tail -n 30 "$BASE/logs/milvus-stderr.log" >&2 2>/dev/null || true
      return 1
    fi
    if (( SECONDS - t0 > TIMEOUT )); then
      echo "milvus.sh: not ready after ${TIMEOUT}s" >&2
      tail -n 30 "$LOG" >&2 || true
      stop
      return 1
    fi
    sleep 1
  done
  echo "milvus.sh: ready on 127.0.0.1:$PORT after $((SECONDS - t0))s"
}

stop() {
  local mpid=""
  [ -s "$BASE/milvus.pid" ] && mpid="$(cat "$BASE/milvus.pid")"
  if alive; then
    local lpid
    lpid="$(cat "$PIDF")"
    kill -TERM "$lpid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$lpid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$lpid" 2>/dev/null && kill -KILL "$lpid" 2>/dev/null || true
  fi
  # the launcher stops Milvus by PID; if it was killed itself, stop Milvus here, by PID too
  if [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null; then
    kill -TERM "$mpid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$mpid" 2>/dev/null && kill -KILL "$mpid" 2>/dev/null || true
  fi
  rm -f "$PIDF" "$BASE/ready" "$BASE/milvus.pid"
  echo "milvus.sh: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if ready; then echo "running on 127.0.0.1:$PORT"; else echo "not running"; exit 1; fi ;;
  install) install ;;
  *) echo "usage: $0 start|stop|status|install" >&2; exit 2 ;;
esac
