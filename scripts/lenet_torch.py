"""W-lenet (WORKLOADS.md) in PyTorch, to compare with
`cargo run --release --example workloads -- W-lenet` on the same machine.

    taskgrad make-multimnist --out /tmp/mm          # the same 4,000 training images
    python scripts/lenet_torch.py /tmp/mm/multimnist_train.csv [--device cpu|cuda]

The same step: Sener & Koltun's LeNet trunk (conv 1->10 k5, max-pool 2, ReLU,
conv 10->20 k5, max-pool 2, ReLU, flatten, linear 320->50, ReLU), per task
linear 50->50 ReLU and 50->10, softmax cross-entropy on both tasks summed
(equal weights), Adam lr 1e-3, batches of 256 cycled over the images;
pixels standardised with one mean and spread (as taskgrad's --image). Prints
one line: steps/s and images/s over 20 steps after 3 warm-up steps, timed
around the step with the device synchronised, as the Rust side times it.
"""

import argparse
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNetMTL(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 5)
        self.conv2 = nn.Conv2d(10, 20, 5)
        self.fc = nn.Linear(320, 50)
        self.towers = nn.ModuleList([nn.Linear(50, 50) for _ in range(2)])
        self.outs = nn.ModuleList([nn.Linear(50, 10) for _ in range(2)])

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        z = F.relu(self.fc(x.flatten(1)))
        return [o(F.relu(t(z))) for t, o in zip(self.towers, self.outs)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    data = np.loadtxt(a.csv, delimiter=",", skiprows=1, dtype=np.float32)
    x = data[:, :784]
    x = (x - x.mean()) / x.std()
    x = torch.tensor(x).reshape(-1, 1, 28, 28).to(a.device)
    y = torch.tensor(data[:, 784:], dtype=torch.long).to(a.device)
    torch.manual_seed(0)
    model = LeNetMTL().to(a.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [(x[i : i + 256], y[i : i + 256]) for i in range(0, len(x) - 255, 256)]

    def step(i):
        xb, yb = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        out = model(xb)
        loss = F.cross_entropy(out[0], yb[:, 0]) + F.cross_entropy(out[1], yb[:, 1])
        loss.backward()
        opt.step()
        return loss

    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    for i in range(3):
        step(i)
    sync()
    t = time.perf_counter()
    for i in range(20):
        loss = step(3 + i)
    sync()
    sps = 20 / (time.perf_counter() - t)
    print(
        f"workload=W-lenet system=pytorch-{torch.__version__} device={a.device} "
        f"threads={torch.get_num_threads()} steps_per_s={sps:.3f} images_per_s={sps * 256:.0f} "
        f"loss={loss.item():.4f}"
    )


if __name__ == "__main__":
    main()
