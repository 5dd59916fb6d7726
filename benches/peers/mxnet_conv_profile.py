"""Per-convolution times of MXNet 1.9.1's ResNet-50 v1 (batch 1, 2 threads) from MXNet's own
profiler, in execution order: where mixnet's convolutions stand against oneDNN's, shape by
shape (compare with `cargo bench -p mixnet-kernels --bench conv`). Run in the MXNet venv:

    MXNET_EXEC_BULK_EXEC_INFERENCE=0 OMP_NUM_THREADS=2 ~/peers/mx/bin/python \
        benches/peers/mxnet_conv_profile.py [hybrid|fused]

Unbulked so that each operator is timed on its own; random weights (no download).
"""
import json
import os
import statistics
import sys
import tempfile
import time

import mxnet as mx
from mxnet.gluon.model_zoo import vision

mode = sys.argv[1] if len(sys.argv) > 1 else "fused"
iters = 20
net = vision.resnet50_v1(pretrained=False)
net.initialize(mx.init.Xavier())
x = mx.nd.random.uniform(shape=(1, 3, 224, 224))
net.hybridize(static_alloc=True, static_shape=True)
if mode == "fused":
    net.optimize_for(x, backend="MKLDNN", static_alloc=True, static_shape=True)
for _ in range(10):
    net(x).wait_to_read()
trace = os.path.join(tempfile.mkdtemp(), "profile.json")
mx.profiler.set_config(profile_all=True, filename=trace)
mx.profiler.set_state("run")
t = time.time()
for _ in range(iters):
    net(x).wait_to_read()
per_forward = (time.time() - t) / iters * 1e3
mx.profiler.set_state("stop")
mx.profiler.dump()
conv = "_sg_mkldnn_conv" if mode == "fused" else "Convolution"
events = sorted((e for e in json.load(open(trace))["traceEvents"] if e.get("name") == conv), key=lambda e: e["ts"])
begun, durations = [], []
for e in events:
    if e["ph"] == "B":
        begun.append(e["ts"])
    elif e["ph"] == "E":
        durations.append(e["ts"] - begun.pop(0))
per = len(durations) // iters
ms = [statistics.median(durations[i::per]) / 1e3 for i in range(per)]
print(json.dumps({"mode": mode, "forward_ms": round(per_forward, 2), "convolutions": per,
                  "conv_ms_total": round(sum(ms), 2), "conv_ms": [round(v, 3) for v in ms]}))
