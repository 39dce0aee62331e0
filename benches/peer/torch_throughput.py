#!/usr/bin/env python3
"""PyTorch CPU side of `cargo bench --bench throughput`: the same models, workloads and batch.

A superset of ../shared/peer/torch_reference.py (same maxout and LeNet nets, same train, fgsm
and advtrain steps, same timing) with one more workload, PGD crafting:
  train     one SGD(momentum) step: forward, backward, update
  fgsm      craft x + eps*sign(grad_x J), clip to [0, 1], classify the result (eval mode)
  advtrain  one step of a*J(x) + (1-a)*J(x_adv), a = 0.5, x_adv by FGSM
  pgd       L-inf PGD from a uniform random start, --pgd-steps steps of --pgd-step-size,
            projected to the eps ball and [0, 1], then classify (eval mode): what
            torchattacks.PGD computes, written out so no extra package is needed
Models: maxout (784 -> maxout U x P -> maxout U x P -> 10) or lenet (conv 16 k5, relu,
max-pool 2, conv 32 k5, relu, max-pool 2, linear 10, on 1x28x28).

Run: .venv-peer/bin/python benches/peer/torch_throughput.py --model lenet --workload pgd
Prints one JSON object per workload with examples_per_s.
"""
import argparse
import json
import time

import torch


class Maxout(torch.nn.Module):
    def __init__(self, inputs, units, pieces):
        super().__init__()
        self.linear = torch.nn.Linear(inputs, units * pieces)
        self.units, self.pieces = units, pieces

    def forward(self, x):
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(dim=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=240)
    ap.add_argument("--pieces", type=int, default=5)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eps", type=float, default=0.25)
    ap.add_argument("--pgd-steps", type=int, default=10)
    ap.add_argument("--pgd-step-size", type=float, default=0.01)
    ap.add_argument("--workload", choices=["train", "fgsm", "advtrain", "pgd", "all"], default="all")
    ap.add_argument("--model", choices=["maxout", "lenet"], default="maxout")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    if a.model == "lenet":
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(512, 10),
        )
        x = torch.rand(a.batch, 1, 28, 28)
    else:
        net = torch.nn.Sequential(
            Maxout(784, a.units, a.pieces), Maxout(a.units, a.units, a.pieces), torch.nn.Linear(a.units, 10)
        )
        x = torch.rand(a.batch, 784)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.5)
    lossf = torch.nn.CrossEntropyLoss()
    y = torch.randint(0, 10, (a.batch,))

    def fgsm(inp):
        xa = inp.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(lossf(net(xa), y), xa)
        return (inp + a.eps * g.sign()).clamp(0.0, 1.0)

    def step_train():
        net.train()
        opt.zero_grad()
        lossf(net(x), y).backward()
        opt.step()

    def step_fgsm():
        net.eval()
        xadv = fgsm(x)
        with torch.no_grad():
            return net(xadv).argmax(1)

    def step_advtrain():
        net.train()
        xadv = fgsm(x)
        opt.zero_grad()
        (0.5 * lossf(net(x), y) + 0.5 * lossf(net(xadv), y)).backward()
        opt.step()

    def step_pgd():
        net.eval()
        xadv = (x + torch.empty_like(x).uniform_(-a.eps, a.eps)).clamp(0.0, 1.0)
        for _ in range(a.pgd_steps):
            xadv.requires_grad_(True)
            (g,) = torch.autograd.grad(lossf(net(xadv), y), xadv)
            xadv = xadv.detach() + a.pgd_step_size * g.sign()
            xadv = (x + (xadv - x).clamp(-a.eps, a.eps)).clamp(0.0, 1.0)
        with torch.no_grad():
            return net(xadv).argmax(1)

    steps = {"train": step_train, "fgsm": step_fgsm, "advtrain": step_advtrain, "pgd": step_pgd}
    names = list(steps) if a.workload == "all" else [a.workload]
    for name in names:
        for _ in range(5):
            steps[name]()
        t = time.perf_counter()
        for _ in range(a.iters):
            steps[name]()
        dt = time.perf_counter() - t
        print(json.dumps({
            "peer": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(), "model": a.model,
            "workload": name, "units": a.units, "pieces": a.pieces, "batch": a.batch,
            "examples_per_s": round(a.iters * a.batch / dt, 1),
        }))


if __name__ == "__main__":
    main()
