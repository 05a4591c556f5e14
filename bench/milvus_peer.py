#!/usr/bin/env python3
"""Runs the peer's ../shared/bench/bench_milvus.py unchanged, with the embedded
server's proxy on another port than 19530 (where `.ci/milvus.sh` runs the test
server of other engineers; the milvus package would otherwise take 19530 when it
is free and block their next start).

  milvus_peer.py PORT path/to/bench_milvus.py [its arguments...]
"""
import runpy
import sys

from milvus import default_server

port = int(sys.argv[1])
script = sys.argv[2]
default_server.listen_port = port  # bench_milvus.py connects to default_server.listen_port
sys.argv = [script] + sys.argv[3:]
runpy.run_path(script, run_name="__main__")
