#!/usr/bin/env python3
"""Builds a ~10 MB APK for the scan benchmark from a real APK of the shared
corpus: its entries (manifest, dex, resources, signature files) plus a 4 MiB
native library (deflated, structured bytes) and a 4.7 MB stored asset (random
bytes, like already-compressed media).

Usage: make_apk.py BASE.apk OUT.apk
"""
import random
import sys
import zipfile


def main() -> None:
    base, out = sys.argv[1], sys.argv[2]
    rnd = random.Random(7)
    # "code-like" bytes: a small vocabulary of 4-byte words, deflates ~3:1
    words = [rnd.randbytes(4) for _ in range(4096)]
    lib = b"".join(rnd.choice(words) for _ in range(1 << 20))
    media = rnd.randbytes(4_700_000)
    with zipfile.ZipFile(base) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info.filename))
        zout.writestr(zipfile.ZipInfo("lib/arm64-v8a/libbench.so"), lib, compress_type=zipfile.ZIP_DEFLATED)
        zout.writestr(zipfile.ZipInfo("assets/media.bin"), media, compress_type=zipfile.ZIP_STORED)


if __name__ == "__main__":
    main()
