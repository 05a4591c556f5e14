#!/usr/bin/env python3
"""Runs the peer's ../shared/bench/bench_milvus.py unchanged, on ports that do
not collide with another embedded Milvus on this machine (other engineers run
test servers through `.ci/milvus.sh`, on 19530 and the embedded etcd's fixed
2379/2380, which the milvus package cannot move by itself).

  milvus_peer.py PROXY_PORT ETCD_PORT WORK_DIR path/to/bench_milvus.py [its arguments...]

It points `default_server` (which bench_milvus.py starts) at a copy of the
package's config template whose embedded etcd reads WORK_DIR/etcd.yaml
(client ETCD_PORT, peer ETCD_PORT+1), and sets the proxy port.
"""
import os
import runpy
import sys

import milvus
from milvus import MilvusServerConfig, default_server

port, etcd_port, work, script = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.makedirs(work, exist_ok=True)
etcd_yaml = os.path.join(work, "etcd.yaml")
with open(etcd_yaml, "w") as f:
    f.write(f"""name: apksift-bench
listen-client-urls: http://127.0.0.1:{etcd_port}
advertise-client-urls: http://127.0.0.1:{etcd_port}
listen-peer-urls: http://127.0.0.1:{etcd_port + 1}
initial-advertise-peer-urls: http://127.0.0.1:{etcd_port + 1}
initial-cluster: apksift-bench=http://127.0.0.1:{etcd_port + 1}
initial-cluster-state: new
""")
data = os.path.join(os.path.dirname(milvus.__file__), "data")
with open(os.path.join(data, "config.yaml.template")) as f:
    tpl = f.read()
anchor = "  use:\n    embed: true"
if anchor not in tpl:
    sys.exit("milvus_peer.py: the package's config template has no embedded-etcd switch")
tpl = tpl.replace(anchor, f"  config:\n    path: {etcd_yaml}\n{anchor}", 1)
tpl_path = os.path.join(work, "config.yaml.template")
with open(tpl_path, "w") as f:
    f.write(tpl)
cfg = MilvusServerConfig(template=tpl_path)
cfg.glog_conf_file = os.path.join(data, "glog.conf")
cfg.set("etcd_port", etcd_port)
default_server.config = cfg
default_server.listen_port = port  # bench_milvus.py connects to default_server.listen_port
sys.argv = [script] + sys.argv[5:]
runpy.run_path(script, run_name="__main__")
