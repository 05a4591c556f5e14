#!/usr/bin/env bash
# apksift's engine against Faiss and embedded Milvus on the same data, in one run.
#
#   bash bench/run.sh 1m      # 1M digests: Faiss flat/range/IVF/HNSW + Milvus + apksift flat/IVF/TLSH/insert/reopen
#   bash bench/run.sh 10m     # 10M digests: Faiss flat/range + apksift flat/TLSH/reopen (no IVF: k-means on 2 cores)
#   bash bench/run.sh all     # 1m then 10m
#
# The peer scripts are run from ../shared/bench as they are, with --data pointing
# at our data (bench/data/ours/nSIZE, made by `apksift-bench synth`, same rules and
# format as the peer generator). Results: bench/out/run-SIZE-DATE/*.jsonl, logs
# beside them; bench/report.py turns them into the tables of docs/BENCHMARKS.md.
#
# Env: VENV, MVENV (Faiss and Milvus virtualenvs, created with the peer pins if
# absent), STAGES (subset of "data codes gt faiss ours insert milvus report"),
# OUT (result dir), CSV (real digests in CSV files), KEEP_STORE=1 (keep the TLSH store).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
PEER="$(cd "$REPO/../shared/bench" && pwd)"
SIZE="${1:-1m}"
VENV="${VENV:-/tmp/venv-bench}"
MVENV="${MVENV:-/tmp/venv-milvus}"
STAGES="${STAGES:-data codes gt faiss ours insert milvus report}"
CSV="${CSV:-$REPO/../shared/data/tlsh-datasets/all_digests.csv}"
# The benchmark builds a committed revision (REV, default HEAD) in its own worktree and
# target dir, so edits in progress in the main tree never leak into a measurement.
REV="${REV:-HEAD}"
WT="${WT:-$HOME/.cache/apksift-bench/wt}"
BT="${BT:-$HOME/.cache/apksift-bench/target}"
BIN="$BT/release/apksift-bench"
export RUST_BACKTRACE=0
has() { [[ " $STAGES " == *" $1 "* ]]; }
log() { echo "$(date -u +%H:%M:%S) [load $(cut -d' ' -f1 /proc/loadavg)] $*"; }

case "$SIZE" in
  1m) SIZES="1m" ;;
  10m) SIZES="10m" ;;
  all) SIZES="1m 10m" ;;
  100k) SIZES="100k" ;;
  *) echo "usage: $0 1m|10m|all" >&2; exit 2 ;;
esac
num() { case "$1" in 100k) echo 100000;; 1m) echo 1000000;; 10m) echo 10000000;; esac; }

# Python environments: the peer's pins (run_anchors.sh; Milvus as .ci/milvus.sh).
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "faiss-cpu==1.15.1" "py-tlsh==5.0.0" numpy psutil
fi
PY="$VENV/bin/python"
if has milvus && [ ! -x "$MVENV/bin/python" ]; then
  python3 -m venv "$MVENV"
  # milvus 2.3.9 has only a macOS arm64 wheel; 2.3.5 is the newest manylinux one.
  "$MVENV/bin/pip" install -q "milvus==2.3.5" "pymilvus>=2.3,<2.4" "setuptools<70" "protobuf>=4.21,<5" \
    "numpy<2" "pandas<2.3" "marshmallow<4" "environs<10" psutil
fi

COMMIT="$(git -C "$REPO" rev-parse "$REV")"
if [ ! -e "$WT/.git" ]; then
  mkdir -p "$(dirname "$WT")"
  git -C "$REPO" worktree add -q --detach "$WT" "$COMMIT"
else
  git -C "$WT" checkout -q -f --detach "$COMMIT"
fi
log "building apksift-bench (release) at $(git -C "$WT" log --oneline -1)"
(cd "$WT" && CARGO_TARGET_DIR="$BT" cargo build -q --release -p apksift-bench)

T_ALL=$SECONDS
for s in $SIZES; do
  D="$REPO/bench/data/ours/n$s"
  OUT="${OUT_BASE:-$REPO/bench/out/run-$s-$(date -u +%Y%m%d-%H%M)}"
  mkdir -p "$OUT" "$REPO/bench/out"
  ln -sfn "$(basename "$OUT")" "$REPO/bench/out/latest-$s"
  export APKSIFT_BENCH_RUN="$(basename "$OUT")"
  STEPS="$OUT/steps.jsonl"
  step() { # step NAME CMD... : runs CMD, logs its output, records wall time and load
    local name="$1"; shift
    local t0=$SECONDS l0; l0=$(cut -d' ' -f1 /proc/loadavg)
    log "== $name"
    local rc=0
    "$@" > >(tee "$OUT/$name.log") 2> >(tee "$OUT/$name.err" >&2) || rc=$?
    "$PY" -c 'import json, sys; print(json.dumps(dict(step=sys.argv[1], seconds=int(sys.argv[2]), rc=int(sys.argv[3]),
      load_start=float(sys.argv[4]), load_end=float(sys.argv[5]), cmd=" ".join(sys.argv[6:]))))' \
      "$name" $((SECONDS - t0)) "$rc" "$l0" "$(cut -d' ' -f1 /proc/loadavg)" "$@" >> "$STEPS"
    return $rc
  }
  {
    echo "date_utc: $(date -u '+%Y-%m-%d %H:%M')"
    echo "git: $(git -C "$WT" rev-parse --short HEAD) (worktree $WT, built clean)"
    echo "rustc: $(rustc -V)"
    echo "python: $("$PY" -V 2>&1)"
    echo "faiss: $("$PY" -c 'import faiss; print(faiss.__version__)')"
    echo "numpy: $("$PY" -c 'import numpy; print(numpy.__version__)')"
    echo "py-tlsh: $("$VENV/bin/pip" show py-tlsh 2>/dev/null | sed -n 's/^Version: //p')"
    if [ -x "$MVENV/bin/python" ]; then
      echo "milvus: $("$MVENV/bin/pip" show milvus 2>/dev/null | sed -n 's/^Version: //p')"
      echo "pymilvus: $("$MVENV/bin/pip" show pymilvus 2>/dev/null | sed -n 's/^Version: //p')"
    fi
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), nproc $(nproc)"
    echo "kernel: $(uname -r)"
    echo "size: $s"
  } > "$OUT/env.txt"
  log "run $s -> $OUT"

  if has data; then
    if [ ! -s "$REPO/bench/data/ours/real.bin" ]; then
      step real "$BIN" real --root /usr --csv "$CSV" --out "$REPO/bench/data/ours"
    fi
    if [ ! -s "$D/db.bin" ]; then
      step synth "$BIN" synth --real "$REPO/bench/data/ours/real.bin" --n "$(num "$s")" --seed 1 --out "$D"
    fi
    cp "$D/meta.json" "$OUT/data_meta.json"
  fi
  if has codes; then
    # apksift's thermometer/raw codes are byte-identical to tlshfmt.py's (same codes for Faiss and us).
    step codes_check bash -c "
      '$BIN' codes --input '$D/db.bin' --enc thermo --out '$OUT/thermo.codes' &&
      '$BIN' codes --input '$D/db.bin' --enc raw --out '$OUT/raw.codes' &&
      '$PY' -c \"
import sys; sys.path.insert(0, '$PEER'); import numpy as np, tlshfmt as tf
db = np.fromfile('$D/db.bin', dtype=np.uint8).reshape(-1, 35)
for enc, f in (('thermo', tf.thermo_codes), ('raw', tf.raw_codes)):
    same = f(db).tobytes() == open('$OUT/' + enc + '.codes', 'rb').read()
    print(enc, 'identical to tlshfmt:', same); assert same
\"; rc=\$?; rm -f '$OUT/thermo.codes' '$OUT/raw.codes'; exit \$rc"
  fi
  if has gt; then
    if [ ! -s "$D/gt.npz" ] || [ "$D/db.bin" -nt "$D/gt.npz" ]; then
      step ground_truth "$PY" "$PEER/ground_truth.py" --data "$D" --workers 2
    else
      log "ground truth: reusing $D/gt.npz"
    fi
    cp "$D/gt_timing.json" "$OUT/gt_timing.json" 2>/dev/null || true
  fi

  FJ="$OUT/faiss.jsonl"
  AJ="$OUT/apksift.jsonl"
  STORE="$REPO/bench/data/store-n$s"
  if [ "$s" = 10m ]; then LQ=200; REPS=1; BRUTE=200; else LQ=1000; REPS=3; BRUTE=1000; fi
  if has faiss; then
    step faiss_thermo "$PY" "$PEER/bench_faiss.py" --data "$D" --enc thermo --indexes numpy,flat,range \
      --lat-queries $LQ --reps $REPS --out "$FJ" || true
    step faiss_raw "$PY" "$PEER/bench_faiss.py" --data "$D" --enc raw --indexes flat \
      --lat-queries $LQ --reps $REPS --out "$FJ" || true
  fi
  if has ours; then
    rm -rf "$OUT/work"
    step apksift_flat "$BIN" flat --data "$D" --db "$OUT/work" --enc thermo,raw \
      --lat-queries $LQ --reps $REPS --out "$AJ" || true
    rm -rf "$STORE"
    step apksift_tlsh "$BIN" tlsh --data "$D" --db "$STORE" --keep --key-width 64 \
      --lat-queries 1000 --reps $REPS --brute-queries $BRUTE --out "$AJ" || true
    if [ -d "$STORE" ]; then
      step apksift_reopen "$BIN" reopen --data "$D" --db "$STORE" --key-width 64 --out "$AJ" || true
      [ "${KEEP_STORE:-0}" = 1 ] || rm -rf "$STORE"
    fi
  fi
  if [ "$s" != 10m ]; then
    if has faiss; then
      step faiss_ivf "$PY" "$PEER/bench_faiss.py" --data "$D" --enc thermo --indexes ivf \
        --lat-queries $LQ --reps $REPS --out "$FJ" || true
      # Faiss's graph index on the same codes (approximate Hamming k-NN), for the TLSH table.
      step faiss_hnsw "$PY" "$PEER/bench_faiss.py" --data "$D" --enc thermo --indexes hnsw \
        --lat-queries $LQ --reps $REPS --out "$FJ" || true
    fi
    if has ours; then
      rm -rf "$OUT/work"
      step apksift_ivf "$BIN" ivf --data "$D" --db "$OUT/work" --enc thermo --nprobe 1,8,16,32,64 \
        --lat-queries $LQ --reps $REPS --out "$AJ" || true
      rm -rf "$OUT/work"
    fi
  fi
  if has insert && [ "$s" = 1m ]; then
    rm -rf "$OUT/insert-store"
    for T in 1 2; do
      rm -rf "$OUT/insert-store"
      step apksift_insert_t$T "$BIN" insert --db "$OUT/insert-store" --n 3000000 --dim 192 --batch 50000 \
        --threads $T --out "$AJ" || true
    done
    rm -rf "$OUT/insert-store"
  fi
  if has milvus && [ "$s" = 1m ]; then
    # Another engineer's test Milvus (.ci/milvus.sh) runs on 19530 at times: ours gets its own
    # base dir and proxy port (MILVUS_BENCH_PORT; the package picks free ports for the rest),
    # and theirs is never touched.
    { bash "$REPO/.ci/milvus.sh" status || true; } > "$OUT/milvus_ci_status.txt" 2>&1
    MPORT="${MILVUS_BENCH_PORT:-19631}"; EPORT="${MILVUS_BENCH_ETCD_PORT:-2479}"
    for p in "$MPORT" "$EPORT" $((EPORT + 1)); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "port $p is taken; set MILVUS_BENCH_PORT / MILVUS_BENCH_ETCD_PORT" >&2; exit 1
      fi
    done
    MB="$OUT/milvus-base"
    rm -rf "$MB"; mkdir -p "$MB"
    step milvus timeout -k 60 3600 "$MVENV/bin/python" "$HERE/milvus_peer.py" "$MPORT" "$EPORT" "$MB" \
      "$PEER/bench_milvus.py" --data "$D" --base "$MB/base" --out "$OUT/milvus.json" || true
    if [ -s "$MB/base/server.pid" ] && kill -0 "$(cat "$MB/base/server.pid")" 2>/dev/null; then
      kill "$(cat "$MB/base/server.pid")"; sleep 5
      kill -9 "$(cat "$MB/base/server.pid")" 2>/dev/null || true
    fi
    rm -rf "$MB"
  fi
  log "run $s done in $((SECONDS - T_ALL)) s"
  echo "total_seconds: $((SECONDS - T_ALL))" >> "$OUT/env.txt"
done

if has report; then
  "$PY" "$HERE/report.py" --doc "$REPO/docs/BENCHMARKS.md" \
    $(for s in 1m 10m; do [ -e "$REPO/bench/out/latest-$s" ] && echo "$REPO/bench/out/latest-$s"; done)
fi
