#!/usr/bin/env python3
"""Fashion-MNIST training on the peers, the same workload as mixnet's main job.

LeNet: conv5x5(20) relu maxpool2 -> conv5x5(50) relu maxpool2 -> dense500 relu -> dense10,
softmax cross-entropy, SGD with momentum, inputs scaled to [0, 1] (ToTensor), shuffled
each epoch with a fixed seed. Reports the wall time of each epoch (data preparation
included, as the main job's epoch time is) and the test accuracy after each epoch.

  ~/peers/mx/bin/python benches/peers/fashion_mnist_train.py --framework mxnet [--mode hybrid]
  ~/peers/pt/bin/python benches/peers/fashion_mnist_train.py --framework torch

Prints one JSON line. Uses ../shared/peers/common.py for thread pinning and the record
format, so figures sit beside the other peer workloads.
"""
import gzip
import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "peers"))
import common  # noqa: E402

p = common.base_parser(__doc__)
p.add_argument("--mode", default=None, help="mxnet: imperative|hybrid; torch: eager")
p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--batch-size", type=int, default=64)
p.add_argument("--lr", type=float, default=0.05)
p.add_argument("--momentum", type=float, default=0.9)
p.add_argument("--max-batches", type=int, default=0, help="stop each epoch after N batches (0: all)")
args = p.parse_args()
common.set_thread_env(args.threads)

import numpy as np  # noqa: E402


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    _, _, _, ndim = struct.unpack(">BBBB", data[:4])
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split):
    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(args.data, name)):
                return os.path.join(args.data, name)
        sys.exit(f"missing {stem}[.gz] under {args.data}: apt-get install dataset-fashion-mnist")
    x = read_idx(find(f"{split}-images-idx3-ubyte")).astype(np.float32)[:, None] / 255.0
    y = read_idx(find(f"{split}-labels-idx1-ubyte")).astype(np.int64)
    return x, y


xtr, ytr = load("train")
xte, yte = load("t10k")
rng = np.random.RandomState(args.seed)
B = args.batch_size
epochs = []

if args.framework == "mxnet":
    mode = args.mode or "hybrid"
    mx = common.init_mxnet(args.seed)
    from mxnet import autograd, gluon, nd
    nn = gluon.nn
    net = nn.HybridSequential()
    net.add(nn.Conv2D(20, kernel_size=5), nn.Activation("relu"), nn.MaxPool2D(2, 2),
            nn.Conv2D(50, kernel_size=5), nn.Activation("relu"), nn.MaxPool2D(2, 2),
            nn.Dense(500, activation="relu"), nn.Dense(10))
    net.initialize(mx.init.Xavier())
    if mode == "hybrid":
        net.hybridize(static_alloc=True, static_shape=True)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd",
                            {"learning_rate": args.lr, "momentum": args.momentum})

    def evaluate():
        correct = 0
        for i in range(0, len(xte), 1000):
            out = net(nd.array(xte[i:i + 1000]))
            correct += int((out.argmax(axis=1).asnumpy().astype(np.int64) == yte[i:i + 1000]).sum())
        return correct / len(xte)

    for epoch in range(args.epochs):
        order = rng.permutation(len(xtr))
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(xtr) - B + 1, B)):
            if args.max_batches and k >= args.max_batches:
                break
            idx = order[i:i + B]
            x, y = nd.array(xtr[idx]), nd.array(ytr[idx])
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(B)
        nd.waitall()
        dt = time.perf_counter() - t0
        epochs.append({"epoch": epoch, "seconds": round(dt, 2), "test_acc": round(evaluate(), 4)})
else:
    torch = common.init_torch(args.threads, args.seed)
    mode = "eager"
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2),
        torch.nn.Conv2d(20, 50, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2),
        torch.nn.Flatten(), torch.nn.Linear(800, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10))
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=args.momentum)

    def evaluate():
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xte), 1000):
                out = net(torch.from_numpy(xte[i:i + 1000]))
                correct += int((out.argmax(1).numpy() == yte[i:i + 1000]).sum())
        return correct / len(xte)

    for epoch in range(args.epochs):
        order = rng.permutation(len(xtr))
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(xtr) - B + 1, B)):
            if args.max_batches and k >= args.max_batches:
                break
            idx = order[i:i + B]
            x, y = torch.from_numpy(xtr[idx]), torch.from_numpy(ytr[idx])
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
        dt = time.perf_counter() - t0
        epochs.append({"epoch": epoch, "seconds": round(dt, 2), "test_acc": round(evaluate(), 4)})

common.emit({"workload": "fashion_mnist_train", "mode": mode, "batch": B, "lr": args.lr,
             "momentum": args.momentum, "max_batches": args.max_batches, "epochs": epochs}, args)
