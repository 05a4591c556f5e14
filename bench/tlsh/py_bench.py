"""py-tlsh side of bench/tlsh/run.sh: best-of-N `tlsh.hash(buf)` on a file, same output format
as crates/tlsh/benches/hash.rs (`RESULT key=value ...`)."""
import sys
import time

import tlsh


def main() -> None:
    path, repeats = sys.argv[1], int(sys.argv[2])
    with open(path, "rb") as f:
        buf = f.read()
    digest = tlsh.hash(buf)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        c = time.thread_time()
        t = time.perf_counter()
        tlsh.hash(buf)
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.thread_time() - c)
    mib = len(buf) / (1024 * 1024)
    print(f"RESULT impl=py-tlsh-5.0.0 op=hash bytes={len(buf)} best_s={best:.4f} "
          f"mib_s={mib / best:.1f} cpu_mib_s={mib / best_cpu:.1f} digest={digest}")


if __name__ == "__main__":
    main()
