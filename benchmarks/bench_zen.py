"""Benchmark of ZEN's outer step: the IFT hypergradient in Hessian-vector-product units, and against unrolling.

Setting: MNIST, ConvNet (width ``--width``, instance norm) at IPC 10 (100 synthetic images), a real batch of 32
images per class, K = 5 Neumann terms. Prints one JSON object (``--out`` writes it too); every figure is measured in
this process:

- ``unit_s``: one Hessian-vector product of the synthetic loss L_S (``hypergrad.hvp``, a double backward through the
  network on the synthetic images), the unit of the IFT's cost;
- ``ift_s`` / ``ift_units``: ``zen.family_hypergradient`` at trained weights (the graph of ∂L_S/∂θ, ∂L_T/∂θ on the
  real batch, K products, the mixed product to the images), rounds interleaved with the unit, ratio paired per
  round. Target: ``ift_units <= K + 3``;
- ``sweep``: for J = 1..40 inner steps, the whole hypergradient by IFT (J plain SGD steps, then the IFT) and by
  unrolling the J steps with ``higher`` (``zen.measure_hypergradient_cost``): seconds and the bytes autograd saves.
  ``crossover_J``: the smallest J from which the IFT is faster at every larger J measured. Targets: the IFT is faster
  once J >= 10; its memory does not grow with J (``ift_bytes_growth``: largest over smallest).

    python benchmarks/bench_zen.py [--device cpu|cuda] [--repeats 5] [--out benchmarks/zen_cpu_2core.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import interleaved, paired_ratio  # noqa: E402

from course_utils import __version__
from course_utils.data import datasets as data
from course_utils.methods import (
    hypergrad,
    zen,  # noqa: E402
)
from course_utils.nets import samplers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--terms", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--inner-steps", default="1,2,5,10,20,40")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    train, _ = data.load("mnist")
    train = train.balanced_subset(42, torch.Generator().manual_seed(0)).to(device)
    idx = train.sample_per_class(42, torch.Generator().manual_seed(1))  # (K, 42): 10 synthetic + 32 real per class
    images = train.images[idx[:, :10]].flatten(0, 1)
    labels = torch.arange(10, device=device).repeat_interleave(10)
    real = train.images[idx[:, 10:]].flatten(0, 1)
    real_labels = torch.arange(10, device=device).repeat_interleave(32)
    net = samplers.FreshInit("convnet", width=args.width).bind(train.info, device).build(0)
    trained = samplers.FreshInit("convnet", width=args.width).bind(train.info, device).build(0)
    zen.train_inner(trained, images, labels, 10, 0.02)

    x = images.clone().requires_grad_(True)
    params = list(trained.parameters())
    g_s = torch.autograd.grad(F.cross_entropy(trained(x), labels), params, create_graph=True)
    v = tuple(torch.randn_like(p) for p in params)

    def unit():
        hypergrad.hvp(g_s, params, v)

    def ift():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hypergrad.NeumannDivergenceWarning)
            zen.family_hypergradient(trained, x, labels, real, real_labels, terms=args.terms, alpha=0.01)

    times = interleaved({"unit": unit, "ift": ift}, device, args.repeats)
    ift_units = paired_ratio(times, "ift", "unit")

    steps = [int(s) for s in args.inner_steps.split(",")]
    sweep = zen.measure_hypergradient_cost(
        net, images, labels, real, real_labels, inner_steps=steps, terms=args.terms, repeats=args.repeats
    )
    faster = [c.ift_seconds < c.unrolled_seconds for c in sweep]
    crossover = next((c.inner_steps for i, c in enumerate(sweep) if all(faster[i:])), None)
    ift_bytes = [c.ift_bytes for c in sweep]
    out = {
        "benchmark": "zen_hypergradient",
        "device": str(device),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "course_utils": __version__,
        "threads": torch.get_num_threads(),
        "setting": {
            "dataset": "mnist",
            "model": f"convnet width {args.width}",
            "ipc": 10,
            "real_per_class": 32,
            "neumann_terms": args.terms,
            "repeats": args.repeats,
        },
        "unit_s": round(statistics.median(times["unit"]), 5),
        "ift_s": round(statistics.median(times["ift"]), 5),
        "ift_units": round(ift_units, 2),
        "targets": {"cuda_ours_vs_baseline_max": None, "ift_units_max": args.terms + 3, "crossover_J_max": 10},
        "ift_units_met": ift_units <= args.terms + 3,
        "sweep": [
            {
                "inner_steps": c.inner_steps,
                "ift_s": round(c.ift_seconds, 4),
                "unrolled_s": round(c.unrolled_seconds, 4),
                "ift_over_unrolled": round(c.ift_seconds / c.unrolled_seconds, 3),
                "ift_mib": round(c.ift_bytes / 2**20, 1),
                "unrolled_mib": round(c.unrolled_bytes / 2**20, 1),
            }
            for c in sweep
        ],
        "crossover_J": crossover,
        "faster_from_J10_met": crossover is not None and crossover <= 10,
        "ift_bytes_growth": round(max(ift_bytes) / min(ift_bytes), 3),
        "ift_memory_flat_met": max(ift_bytes) <= 1.1 * min(ift_bytes),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
