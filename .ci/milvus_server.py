#!/usr/bin/env python3
"""Run the embedded Milvus 2.3.5 standalone server (PyPI `milvus`) for apksift's tests.

Started by `.ci/milvus.sh start` in the background; it stays in the foreground
of its own process, writes the Milvus PID next to its own, and stops the server
(by that PID) when it gets SIGTERM/SIGINT. Internal component addresses are
pinned to 127.0.0.1 so nothing is advertised on another interface.

    milvus_server.py BASE_DIR PORT
"""
import os
import signal
import sys
import time

from milvus import default_server


def main():
    base, port = sys.argv[1], int(sys.argv[2])
    srv = default_server
    srv.set_base_dir(base)
    srv.listen_port = port
    # Components advertise these addresses to each other (through etcd);
    # the proxy's gRPC listener itself is on PORT.
    for comp in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexCoord",
                 "indexNode", "dataCoord", "dataNode"):
        srv.config.set(f"{comp}.ip", "127.0.0.1")
    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t = time.time()
    try:
        srv.start()
    except BaseException as e:  # noqa: BLE001
        print(f"milvus start failed: {type(e).__name__}: {e}", flush=True)
        srv.stop()
        sys.exit(2)
    with open(os.path.join(base, "milvus.pid"), "w", encoding="utf-8") as f:
        f.write(str(srv.server_proc.pid))
    print(f"milvus ready on 127.0.0.1:{port} pid {srv.server_proc.pid} in {time.time() - t:.1f}s",
          flush=True)
    with open(os.path.join(base, "ready"), "w", encoding="utf-8") as f:
        f.write(f"{time.time() - t:.1f}\n")
    while not stopping and srv.server_proc.poll() is None:
        time.sleep(0.2)
    code = srv.server_proc.poll()
    proc = srv.server_proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except Exception:  # noqa: BLE001
        proc.kill()
        proc.wait(timeout=10)
    srv.server_proc = None
    for name in ("ready", "milvus.pid"):
        try:
            os.remove(os.path.join(base, name))
        except FileNotFoundError:
            pass
    print(f"milvus stopped (exit code before stop: {code})", flush=True)


if __name__ == "__main__":
    main()
