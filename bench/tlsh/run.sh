#!/usr/bin/env bash
# TLSH hashing throughput of apksift-tlsh against py-tlsh 5.0.0 (the C++ reference core), on the
# same deterministic buffer, in the same run. Also prints apksift-tlsh's distance ns/pair.
#
#   bench/tlsh/run.sh                 # 100 MiB, best of 5, 2 interleaved rounds
#   MIB=20 REPEATS=3 ROUNDS=1 bench/tlsh/run.sh
#
# Needs python3 (venv + pip from PyPI) and cargo. Writes bench/data/tlsh/ (venv, buffer) and
# bench/out/tlsh/result.md (both git-ignored). Not a test: nothing here fails on a slow machine.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
MIB=${MIB:-100}
REPEATS=${REPEATS:-5}
ROUNDS=${ROUNDS:-2}
data=$root/bench/data/tlsh
out=$root/bench/out/tlsh
mkdir -p "$data" "$out"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/apksift-target}

venv=${TLSH_BENCH_VENV:-$data/venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check py-tlsh==5.0.0

buf=$data/random-${MIB}MiB.bin
if [ ! -f "$buf" ]; then
    # Deterministic: Python's Mersenne Twister with a fixed seed.
    "$venv/bin/python" -c 'import random, sys; open(sys.argv[1], "wb").write(random.Random(20261203).randbytes(int(sys.argv[2]) << 20))' "$buf" "$MIB"
fi
sha=$(sha256sum "$buf" | cut -c1-16)

(cd "$root" && cargo bench --quiet -p apksift-tlsh --bench hash --no-run 2>/dev/null)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
log=$out/run.log
: > "$log"
for round in $(seq "$ROUNDS"); do
    echo "# round $round" >> "$log"
    (cd "$root" && cargo bench --quiet -p apksift-tlsh --bench hash -- --buf "$buf" --repeats "$REPEATS") >> "$log"
    "$venv/bin/python" "$here/py_bench.py" "$buf" "$REPEATS" >> "$log"
done

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
best_of() { grep "RESULT impl=$1 op=$2 " "$log" | field "$3" | sort -g | "$4" -n1; }
ours=$(best_of apksift-tlsh hash mib_s tail)
ours_cpu=$(best_of apksift-tlsh hash cpu_mib_s tail)
ours_stream=$(best_of apksift-tlsh hash_stream_64k mib_s tail)
ours_stream_cpu=$(best_of apksift-tlsh hash_stream_64k cpu_mib_s tail)
py=$(best_of 'py-tlsh[^ ]*' hash mib_s tail)
py_cpu=$(best_of 'py-tlsh[^ ]*' hash cpu_mib_s tail)
d_ours=$(grep "RESULT impl=apksift-tlsh op=hash " "$log" | head -n1 | field digest)
d_py=$(grep "RESULT impl=py-tlsh" "$log" | head -n1 | field digest)
dist=$(best_of apksift-tlsh distance ns_per_pair head)
body_pop=$(best_of apksift-tlsh body_distance_popcount ns_per_pair head)
body_lut=$(best_of apksift-tlsh body_distance_lut64k ns_per_pair head)
ratio=$(python3 -c "print(f'{$ours / $py:.2f}')")
ratio_cpu=$(python3 -c "print(f'{$ours_cpu / $py_cpu:.2f}')")
same=$([ "$d_ours" = "$d_py" ] && echo "identical" || echo "DIFFERENT: $d_ours vs $d_py")

{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(uname -r); load average before: $load0"
    echo "input: $buf ($MIB MiB, sha256 $sha…), best of $REPEATS x $ROUNDS rounds; digests $same"
    echo
    echo "| implementation | MiB/s (wall) | MiB/s (thread CPU time) |"
    echo "|---|---|---|"
    echo "| apksift-tlsh \`hash\` (one shot) | $ours | $ours_cpu |"
    echo "| apksift-tlsh \`Hasher\` (64 KiB chunks) | $ours_stream | $ours_stream_cpu |"
    echo "| py-tlsh 5.0.0 \`tlsh.hash\` | $py | $py_cpu |"
    echo "| **ratio apksift \`hash\` / py-tlsh** | **$ratio** | **$ratio_cpu** |"
    echo
    echo "distance (random digests, 16.7 M pairs): full \`distance\` $dist ns/pair; body only: popcount $body_pop ns/pair, 64 KiB table $body_lut ns/pair"
} | tee "$out/result.md"
