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
  --attack apgd       torchattacks.APGD(norm Linf, eps, steps, loss, n_restarts 1)
                                                                vs apgd(eps, loss, steps)

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
    ap.add_argument("--attack", choices=["deepfool", "apgd"], default="deepfool")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--loss", choices=["ce", "dlr"], default="ce")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = build(args.checkpoint)
    images = idx(find(args.mnist, "t10k-images-idx3-ubyte"))[: args.n].float().div(255).unsqueeze(1)
    labels = idx(find(args.mnist, "t10k-labels-idx1-ubyte"))[: args.n].long()
    with torch.no_grad():
        right_before = model(images).argmax(1) == labels
    if args.attack == "deepfool":
        attack = torchattacks.DeepFool(model, steps=args.steps, overshoot=args.overshoot)
    else:
        attack = torchattacks.APGD(model, norm="Linf", eps=args.eps, steps=args.steps, n_restarts=1, loss=args.loss, seed=0)
    adv = attack(images, labels)
    with torch.no_grad():
        wrong_after = model(adv).argmax(1) != labels
    l2 = (adv - images).flatten(1).norm(dim=1).tolist()
    fooled = [n for n, r, w in zip(l2, right_before.tolist(), wrong_after.tolist()) if r and w]
    print(json.dumps({
        "error": wrong_after.float().mean().item(),
        "l2_mean": statistics.fmean(l2),
        "l2_median": statistics.median(l2),
        "l2_mean_fooled": statistics.fmean(fooled) if fooled else 0.0,
        "l2_median_fooled": statistics.median(fooled) if fooled else 0.0,
        "linf_max": (adv - images).flatten(1).abs().max().item(),
        "images": args.n,
    }))


if __name__ == "__main__":
    main()
