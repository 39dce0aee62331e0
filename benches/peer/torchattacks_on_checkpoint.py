#!/usr/bin/env python3
"""advpipe's attacks against torchattacks' on the same checkpoint and the same test images.

Loads an advpipe checkpoint (model.safetensors from a cache entry: `advpipe explain FILE NODE`
prints the key; the entry is CACHE/objects/<key[:2]>/<key>/) of a net made of flatten,
dropout (a no-op here: evaluation mode), linear and maxout layers, rebuilds it in PyTorch,
runs a torchattacks attack on the first N MNIST test images with their true labels (inputs
clamped to [0, 1], as advpipe's default clip), and prints one JSON line: the error after the
attack and the per-example norms of the perturbations (mean and median L2 over all images
and over the fooled ones: right before, wrong after; the largest L-inf), the figures
advpipe's `evaluate(..., attack: ...)` gives as error, l2_mean, l2_median, l2_mean_fooled,
l2_median_fooled and linf_*.

  --attack deepfool   torchattacks.DeepFool(steps, overshoot)   vs deepfool(norm: "l2")
  --attack apgd       torchattacks.APGD(norm, eps, steps, loss, n_restarts 1)
                                                                vs apgd(eps, norm, loss, steps)
  --attack apgdt      torchattacks.APGDT(norm, eps, steps, n_restarts 1, 9 targets)
                                                                vs apgd(eps, norm, loss: "dlr_targeted")
  --attack fab        torchattacks.FAB(norm, eps, steps, multi_targeted: 9 targets)
                                                                vs fab(eps, norm, targets: 9)
  --attack square     torchattacks.Square(norm, eps, n_queries, p_init .8)
                                                                vs square(eps, norm, queries)
  --attack autoattack torchattacks.AutoAttack(norm, eps, version "standard")
                                                                vs autoattack(eps, norm)
  --attack pgd        torchattacks.PGD(eps, alpha, steps, random start)
                                                                vs pgd(eps, steps, step_size)
  --attack fgsm       torchattacks.FGSM(eps)                    vs fgsm(eps)
  --attack bim        torchattacks.BIM(eps, alpha, steps)       vs bim(eps, steps, step_size)

It also prints wall times on 2 threads in batches of --batch: `seconds`, the attack alone,
and `evaluation_seconds`, the work of advpipe's `evaluate` node: for each batch the clean
predictions, the attack and the predictions on the crafted batch.

Set-up: python3 -m venv .venv-peer && .venv-peer/bin/pip install torch torchattacks safetensors
Run:    .venv-peer/bin/python benches/peer/torchattacks_on_checkpoint.py CHECKPOINT MNIST_DIR --n 1000

torchattacks' DeepFool differs from the paper (and advpipe) in two details: it applies the
overshoot to every step rather than to the accumulated one, and it adds nothing past the
boundary; both clamp to [0, 1] after every step.
"""
import argparse
import gzip
import json
import os
import statistics
import time

import torch
import torchattacks
from safetensors import safe_open


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(data[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def find(folder, name):
    for candidate in (name, name + ".gz"):
        if os.path.exists(os.path.join(folder, candidate)):
            return os.path.join(folder, candidate)
    raise SystemExit(f"no {name} in {folder}")


class Maxout(torch.nn.Module):
    def __init__(self, weight, bias, units, pieces):
        super().__init__()
        self.linear = torch.nn.Linear(weight.shape[0], units * pieces)
        self.linear.weight.data = weight.t().contiguous()
        self.linear.bias.data = bias
        self.units, self.pieces = units, pieces

    def forward(self, x):
        # advpipe stores maxout's columns unit-major: column u * pieces + p.
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(dim=2)


def build(checkpoint):
    with safe_open(checkpoint, "pt") as f:
        net = json.loads(f.metadata()["advpipe.net"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    layers = []
    for i, layer in enumerate(net["layers"]):
        kind = layer["layer"]
        if kind == "flatten":
            layers.append(torch.nn.Flatten())
        elif kind == "dropout":
            continue
        elif kind == "linear":
            w, b = tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"]
            linear = torch.nn.Linear(w.shape[0], w.shape[1])
            linear.weight.data, linear.bias.data = w.t().contiguous(), b
            layers.append(linear)
        elif kind == "maxout":
            layers.append(Maxout(tensors[f"layers.{i}.weight"], tensors[f"layers.{i}.bias"], layer["units"], layer.get("pieces", 5)))
        else:
            raise SystemExit(f"layer {kind} is not rebuilt by this script")
    return torch.nn.Sequential(*layers).eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("mnist")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--overshoot", type=float, default=0.02)
    ap.add_argument("--attack", choices=["deepfool", "apgd", "apgdt", "fab", "square", "autoattack", "pgd", "fgsm", "bim"], default="deepfool")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--norm", choices=["Linf", "L2"], default="Linf")
    ap.add_argument("--loss", choices=["ce", "dlr"], default="ce")
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--step-size", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = build(args.checkpoint)
    images = idx(find(args.mnist, "t10k-images-idx3-ubyte"))[: args.n].float().div(255).unsqueeze(1)
    labels = idx(find(args.mnist, "t10k-labels-idx1-ubyte"))[: args.n].long()
    if args.attack == "deepfool":
        attack = torchattacks.DeepFool(model, steps=args.steps, overshoot=args.overshoot)
    elif args.attack == "apgd":
        attack = torchattacks.APGD(model, norm=args.norm, eps=args.eps, steps=args.steps, n_restarts=1, loss=args.loss, seed=0)
    elif args.attack == "apgdt":
        attack = torchattacks.APGDT(model, norm=args.norm, eps=args.eps, steps=args.steps, n_restarts=1, seed=0, n_classes=10)
    elif args.attack == "fab":
        attack = torchattacks.FAB(model, norm=args.norm, eps=args.eps, steps=args.steps, n_restarts=1, multi_targeted=True, n_classes=10, seed=0)
    elif args.attack == "square":
        attack = torchattacks.Square(model, norm=args.norm, eps=args.eps, n_queries=args.queries, n_restarts=1, p_init=0.8, seed=0)
    elif args.attack == "autoattack":
        attack = torchattacks.AutoAttack(model, norm=args.norm, eps=args.eps, version="standard", n_classes=10, seed=0)
    elif args.attack == "fgsm":
        attack = torchattacks.FGSM(model, eps=args.eps)
    elif args.attack == "bim":
        attack = torchattacks.BIM(model, eps=args.eps, alpha=args.step_size, steps=args.steps)
    else:
        attack = torchattacks.PGD(model, eps=args.eps, alpha=args.step_size, steps=args.steps, random_start=True)
    right_before, adv, wrong_after, seconds = [], [], [], 0.0
    started = time.perf_counter()
    for i in range(0, args.n, args.batch):
        x, y = images[i : i + args.batch], labels[i : i + args.batch]
        with torch.no_grad():
            right_before.append(model(x).argmax(1) == y)
        attack_started = time.perf_counter()
        adv.append(attack(x, y))
        seconds += time.perf_counter() - attack_started
        with torch.no_grad():
            wrong_after.append(model(adv[-1]).argmax(1) != y)
    evaluation_seconds = time.perf_counter() - started
    right_before, adv, wrong_after = torch.cat(right_before), torch.cat(adv), torch.cat(wrong_after)
    l2 = (adv - images).flatten(1).norm(dim=1).tolist()
    linf = (adv - images).flatten(1).abs().amax(dim=1).tolist()
    fooled_rows = [i for i, (r, w) in enumerate(zip(right_before.tolist(), wrong_after.tolist())) if r and w]
    fooled = [l2[i] for i in fooled_rows]
    fooled_linf = [linf[i] for i in fooled_rows]
    print(json.dumps({
        "error": wrong_after.float().mean().item(),
        "l2_mean": statistics.fmean(l2),
        "l2_median": statistics.median(l2),
        "l2_mean_fooled": statistics.fmean(fooled) if fooled else 0.0,
        "l2_median_fooled": statistics.median(fooled) if fooled else 0.0,
        "linf_max": max(linf),
        "linf_median_fooled": statistics.median(fooled_linf) if fooled_linf else 0.0,
        "images": args.n,
        "seconds": round(seconds, 2),
        "evaluation_seconds": round(evaluation_seconds, 2),
    }))


if __name__ == "__main__":
    main()
