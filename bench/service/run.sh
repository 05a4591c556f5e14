#!/usr/bin/env bash
# Load benchmark of `apksift serve` on loopback (wrk from Debian).
#
#   bench/service/run.sh [all|search|scan|replicas|mixed]
#
# Environment (defaults):
#   WORK=/tmp/svcbench        scratch directory (store, data, logs, results)
#   DATA=bench/data/ours/n1m  the 1M TLSH dataset (db.bin, db_family.i32, queries.bin),
#                             made by `bash bench/run.sh 1m` (or its `data` stage)
#   APKSIFT=…/release/apksift the binary (built with `cargo build --release -p apksift` when unset)
#   DUR=20s                   duration of each search/scan/replica point
#   SEARCH_C="1 2 4 8 16 32"  search concurrency levels
#   SEARCH_CUTOFFS="100 none" search points with `"cutoff": 100` (matches < 100, what a
#                             detector asks) and without a cutoff (the 10 nearest at any distance)
#   SCAN_C="1 2 4 8"          scan concurrency levels
#   MIXED_DUR=600s MIXED_C=8 WRITE_PCT=10   the mixed read/write run
#
# Results: one JSON line per point in $WORK/results.jsonl (wrk's latency
# percentiles, requests/s, error counts, load average before and after).
# Every server, replica and nginx started here listens on 127.0.0.1 only and
# is stopped at the end (by its own pid).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${WORK:-/tmp/svcbench}"
DATA="${DATA:-$ROOT/bench/data/ours/n1m}"
DUR="${DUR:-20s}"
SEARCH_C="${SEARCH_C:-1 2 4 8 16 32}"
SEARCH_CUTOFFS="${SEARCH_CUTOFFS:-100 none}"
SCAN_C="${SCAN_C:-1 2 4 8}"
MIXED_DUR="${MIXED_DUR:-600s}"
MIXED_C="${MIXED_C:-8}"
export WRITE_PCT="${WRITE_PCT:-10}"
KEY="bench-admin-key-0123456789"
export APKSIFT_KEY="$KEY" BENCH_DIR="$HERE" QUERIES="$WORK/queries.txt" APK="$WORK/bench10m.apk"
WHAT="${1:-all}"
PORT=18080; R1=18081; R2=18082; LB=18090; LB1=18091

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
mkdir -p "$WORK"
if [ -z "${APKSIFT:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p apksift)
    APKSIFT="${CARGO_TARGET_DIR:-$ROOT/target}/release/apksift"
fi

# ---- data: import CSV + queries, the 1M-digest store, the 10 MB APK
[ -f "$WORK/import.csv" ] || python3 "$HERE/gen_data.py" "$DATA" "$WORK"
if [ ! -d "$WORK/db" ]; then
    /usr/bin/time -f "import: %e s wall, %M KiB max RSS" \
        "$APKSIFT" --db "$WORK/db" import --format csv "$WORK/import.csv"
fi
[ -f "$WORK/bench10m.apk" ] || python3 "$HERE/make_apk.py" \
    "$ROOT/../shared/data/apk/malware/ashishb/fake_av_reader/fakeAV_934527F8EBB5C1088009CC9329DC3DE6_LabelReader.apk" \
    "$WORK/bench10m.apk"

PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

start_server() { # port extra-args...
    local port=$1; shift
    APKSIFT_API_KEYS="admin:$KEY" "$APKSIFT" --db "$WORK/db" serve --listen "127.0.0.1:$port" \
        --max-queued-scans 256 "$@" >"$WORK/serve-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server on $port did not start" >&2; cat "$WORK/serve-$port.log" >&2; exit 1
}

stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

point() { # label url script conns duration
    local label=$1 url=$2 script=$3 c=$4 d=$5 t=2
    [ "$c" -lt 2 ] && t=1
    local before after out
    before=$(cut -d' ' -f1 /proc/loadavg)
    out=$(wrk -t"$t" -c"$c" -d"$d" --timeout 10s -s "$HERE/$script" "$url" | tail -1)
    after=$(cut -d' ' -f1 /proc/loadavg)
    local line="{\"point\": \"$label\", \"conns\": $c, \"load_before\": $before, \"load_after\": $after, \"wrk\": $out}"
    echo "$line" | tee -a "$WORK/results.jsonl"
}

metrics_5xx() { # port
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^apksift_http_requests_total\{.*status="5xx"/ {s += $2} END {print s + 0}'
}

echo "# run $(date -u +%FT%TZ) $(nproc) cores, $("$APKSIFT" --version)" | tee -a "$WORK/results.jsonl"

if [ "$WHAT" = all ] || [ "$WHAT" = search ] || [ "$WHAT" = scan ]; then
    start_server $PORT
    W=${PIDS[-1]}
    if [ "$WHAT" != scan ]; then
        for co in $SEARCH_CUTOFFS; do
            for c in $SEARCH_C; do
                CUTOFF=$co point "search-cutoff-$co" "http://127.0.0.1:$PORT" search.lua "$c" "$DUR"
            done
        done
    fi
    if [ "$WHAT" != search ]; then
        for c in $SCAN_C; do point scan "http://127.0.0.1:$PORT" scan.lua "$c" "$DUR"; done
        curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^apksift_scan_stage_duration_seconds_(sum|count)' | tee -a "$WORK/scan-stages.txt"
    fi
    stop_pid "$W"
fi

if [ "$WHAT" = all ] || [ "$WHAT" = replicas ]; then
    # The writer plus two read-only replicas of the same directory, and nginx
    # round-robin in front of (a) the two replicas, (b) one replica only.
    start_server $PORT
    start_server $R1 --read-only
    start_server $R2 --read-only
    cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-body;
    proxy_temp_path $WORK/nginx-proxy;
    client_max_body_size 100m;
    upstream replicas { server 127.0.0.1:$R1; server 127.0.0.1:$R2; keepalive 64; }
    upstream one { server 127.0.0.1:$R1; keepalive 64; }
    server { listen 127.0.0.1:$LB; location / { proxy_pass http://replicas; proxy_http_version 1.1; proxy_set_header Connection ""; } }
    server { listen 127.0.0.1:$LB1; location / { proxy_pass http://one; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
EOF
    nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
    sleep 1
    for c in 16 32; do
        point "search-direct-1-server" "http://127.0.0.1:$R1" search.lua "$c" "$DUR"
        point "search-nginx-1-replica" "http://127.0.0.1:$LB1" search.lua "$c" "$DUR"
        point "search-nginx-2-replicas" "http://127.0.0.1:$LB" search.lua "$c" "$DUR"
    done
    cleanup; PIDS=()
fi

if [ "$WHAT" = all ] || [ "$WHAT" = mixed ]; then
    start_server $PORT
    W=${PIDS[-1]}
    RUN_ID=$(date +%s) point "mixed-${WRITE_PCT}pct-writes" "http://127.0.0.1:$PORT" mixed.lua "$MIXED_C" "$MIXED_DUR"
    echo "{\"point\": \"mixed-server-5xx\", \"count\": $(metrics_5xx $PORT)}" | tee -a "$WORK/results.jsonl"
    curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^apksift_(store_rows|store_segments|store_flushes_total|store_merges_total|wal_fsync_duration_seconds_(sum|count)|inserted_rows_total) ' | tee -a "$WORK/mixed-metrics.txt"
    stop_pid "$W"
fi
