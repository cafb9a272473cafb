#!/usr/bin/env python3
"""W-iris (WORKLOADS.md) in PyTorch, eager, on the CPU or a CUDA device: the
reference a taskgrad measurement is compared with in the same sitting.

    python3 scripts/workloads_torch.py [--device cpu|cuda] [--threads N]

Prints one line `steps_per_s=...` as the workload runner does. Iris is read
from data/iris.csv next to this script; the inputs (sepal length and width)
and the two regression targets are standardised, species is a 3-class label;
the model is Linear(2→64) ReLU Linear(64→64) ReLU with heads Linear(64→3|1|1),
Adam lr 1e-2, the equal-weighted sum of the three losses, the full training
split of 120 rows; 500 timed steps after 50 warm-up steps, the losses read
back every 100 steps (as WORKLOADS.md says).
"""

import argparse
import csv
import os
import time

import torch


def load():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "data", "iris.csv")) as f:
        rows = list(csv.DictReader(f))
    names = sorted({r["species"] for r in rows})
    x = torch.tensor([[float(r["sepal_length"]), float(r["sepal_width"])] for r in rows])
    y = torch.tensor([names.index(r["species"]) for r in rows])
    reg = torch.tensor([[float(r["petal_length"]), float(r["petal_width"])] for r in rows])
    std = lambda t: (t - t.mean(0)) / t.std(0)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(rows), generator=g)[:120]
    return std(x)[order], y[order], std(reg)[order]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    x, y, reg = (t.to(dev) for t in load())
    torch.manual_seed(0)
    trunk = torch.nn.Sequential(
        torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU()
    ).to(dev)
    heads = torch.nn.ModuleList([torch.nn.Linear(64, n) for n in (3, 1, 1)]).to(dev)
    opt = torch.optim.Adam(list(trunk.parameters()) + list(heads.parameters()), lr=1e-2)

    def step():
        z = trunk(x)
        l0 = torch.nn.functional.cross_entropy(heads[0](z), y)
        l1 = torch.nn.functional.mse_loss(heads[1](z).squeeze(1), reg[:, 0])
        l2 = torch.nn.functional.mse_loss(heads[2](z).squeeze(1), reg[:, 1])
        opt.zero_grad(set_to_none=True)
        (l0 + l1 + l2).backward()
        opt.step()
        return torch.stack([l0.detach(), l1.detach(), l2.detach()])

    for _ in range(50):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(500):
        losses = step()
        if (i + 1) % 100 == 0:
            losses.tolist()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    took = time.perf_counter() - start
    print(f"workload=W-iris framework=pytorch-{torch.__version__} device={dev} "
          f"threads={torch.get_num_threads()} steps_per_s={500 / took:.1f}")


if __name__ == "__main__":
    main()
