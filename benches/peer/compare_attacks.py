#!/usr/bin/env python3
"""advpipe's attacks against torchattacks' on one advpipe checkpoint: robust error and wall time.

For each round, alternating the two sides: advpipe runs benches/peer/attacks.adv on the
checkpoint with a fresh cache (every evaluation computed, one at a time, rayon on 2 threads),
then torchattacks_on_checkpoint.py runs each peer attack on the same 1000 MNIST test images
(torch on 2 threads, batch 1000). Prints one markdown table: error (with the 95% Wilson
interval of advpipe's, over the 1000 images), seconds per side (median over rounds) and the
ratio. advpipe's seconds are its `evaluate` node's (from manifest.json): the clean
predictions, the attack and the predictions on the crafted images. The peer's like-for-like
figure times the same three steps per batch; its attack-only time is shown beside it.

  .venv-peer/bin/python benches/peer/compare_attacks.py CHECKPOINT [--eps 0.1] [--rounds 3] [--only fgsm,bim10,pgd40]
      [--n 10000 --batch 500]

CHECKPOINT is a model.safetensors of the maxout net of attacks.adv (784 -> maxout 240 x 5 ->
maxout 240 x 5 -> 10), e.g. robustbench-mnist.adv's `naive` or `adv` from the cache
(`advpipe explain pipelines/robustbench-mnist.adv naive` prints its key). Without torch and
torchattacks in this Python, it says so and exits 0 after advpipe's side.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# advpipe's evaluation -> the peer script's arguments for the same attack.
PEER = {
    "fgsm": ["--attack", "fgsm"],
    "bim10": ["--attack", "bim", "--steps", "10", "--step-size", "0.01"],
    "pgd40": ["--attack", "pgd", "--steps", "40", "--step-size", "0.01"],
    "apgd_ce": ["--attack", "apgd", "--steps", "100", "--loss", "ce"],
    "apgd_t": ["--attack", "apgdt", "--steps", "100"],
    "fab_t": ["--attack", "fab", "--steps", "100"],
    "square": ["--attack", "square", "--queries", "5000"],
    "autoattack": ["--attack", "autoattack"],
}


def wilson(p, n, z=1.96):
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def rows_of(value):
    if isinstance(value, dict):
        if "label" in value and "measured" in value:
            yield value
        for inner in value.values():
            yield from rows_of(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from rows_of(inner)


def only_these(source, only):
    """attacks.adv without the evaluations (and their table rows) that `only` leaves out."""
    kept = []
    for line in source.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "eval" and words[1] not in only:
            continue
        if len(words) >= 2 and words[0] == "row" and words[1].strip('"') not in only:
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def advpipe_side(binary, checkpoint, eps, only, n, batch):
    with tempfile.TemporaryDirectory() as scratch:
        pipeline = os.path.join(scratch, "attacks.adv")
        with open(os.path.join(ROOT, "benches/peer/attacks.adv")) as f, open(pipeline, "w") as out:
            out.write(only_these(f.read(), only))
        cmd = [binary, "run", pipeline, "--set", f'checkpoint="{checkpoint}"', "--set", f"eps={eps}",
               "--set", f"n={n}", "--set", f"batch={batch}",
               "--cache-dir", os.path.join(scratch, "cache"), "--out", os.path.join(scratch, "out"), "--jobs", "1"]
        env = dict(os.environ, RAYON_NUM_THREADS="2")
        log = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
        if log.returncode != 0:
            sys.exit(f"advpipe failed:\n{log.stdout}\n{log.stderr}")
        errors = {r["label"]: r["measured"] for r in rows_of(json.load(open(os.path.join(scratch, "out", "results.json"))))}
        manifest = json.load(open(os.path.join(scratch, "out", "manifest.json")))
        seconds = {node["name"]: node["seconds"] for node in manifest["nodes"]}
    return {name: (errors[name], seconds[name]) for name in only}


def peer_side(python, checkpoint, mnist, eps, name, n, batch):
    cmd = [python, os.path.join(ROOT, "benches/peer/torchattacks_on_checkpoint.py"), checkpoint, mnist,
           "--n", str(n), "--batch", str(batch), "--eps", str(eps)] + PEER[name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    result = json.loads(out)
    return result["error"], result["evaluation_seconds"], result["seconds"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--only", default=",".join(PEER))
    ap.add_argument("--n", type=int, default=1000, help="test images")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--advpipe", default=os.path.join(ROOT, "target/release/advpipe"))
    ap.add_argument("--mnist", default=os.environ.get("ADVPIPE_DATA", os.path.expanduser("~/.cache/advpipe/mnist")))
    args = ap.parse_args()
    only = args.only.split(",")
    checkpoint = os.path.abspath(args.checkpoint)
    try:
        import torch  # noqa: F401
        import torchattacks  # noqa: F401
        peer_missing = None
    except ImportError as e:
        peer_missing = f"peer skipped: {e} in {sys.executable} (python3 -m venv .venv-peer && .venv-peer/bin/pip install torch torchattacks safetensors)"
    ours, theirs = {n: [] for n in only}, {n: [] for n in only}
    for _ in range(args.rounds):
        for name, measured in advpipe_side(args.advpipe, checkpoint, args.eps, only, args.n, args.batch).items():
            ours[name].append(measured)
        if peer_missing is None:
            for name in only:
                theirs[name].append(peer_side(sys.executable, checkpoint, args.mnist, args.eps, name, args.n, args.batch))
    print(f"checkpoint {checkpoint}, first {args.n} MNIST test images, L-inf eps {args.eps}, batch {args.batch}, 2 threads, {args.rounds} round(s)")
    if peer_missing:
        print(peer_missing)
    print("| attack | advpipe error (95% interval) | torchattacks error | advpipe s | torchattacks s | speed-up | torchattacks s, attack alone |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in only:
        error = ours[name][-1][0]
        low, high = wilson(error, args.n)
        ours_s = statistics.median(s for _, s in ours[name])
        if theirs[name]:
            peer_error = theirs[name][-1][0]
            peer_s = statistics.median(s for _, s, _ in theirs[name])
            attack_s = statistics.median(s for _, _, s in theirs[name])
            print(f"| {name} | {100 * error:.1f}% ({100 * low:.1f}-{100 * high:.1f}) | {100 * peer_error:.1f}% | {ours_s:.2f} | {peer_s:.2f} | {peer_s / ours_s:.2f}x | {attack_s:.2f} |")
        else:
            print(f"| {name} | {100 * error:.1f}% ({100 * low:.1f}-{100 * high:.1f}) | - | {ours_s:.2f} | - | - | - |")


if __name__ == "__main__":
    main()
