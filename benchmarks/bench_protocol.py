"""Benchmark of the evaluation protocol against its floor (a script, not a test).

Prints one JSON object:
- ``unit_s``: one forward+backward of the default ConvNet (width 128, depth 3, instance norm) on 256 MNIST
  images: the calibration unit every speed figure in the course is expressed in;
- ``protocol_s`` / ``protocol_units``: one protocol run (``training.evaluate``) on 100 MNIST images,
  ``--epochs`` epochs (default 300, no augmentation), tested on the full 10 000-image test set;
- ``floor_s``: what that run cannot avoid, measured in the same process: ``epochs`` forward+backward passes
  of the 100 images plus one forward pass over the test set;
- ``ratio_to_floor`` (target <= 1.1). For reference, the official DC code's evaluation of 100 MNIST images
  costs about 134 units on a 2-core CPU.

    python benchmarks/bench_protocol.py [--epochs 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from course_utils.core import repro
from course_utils.data import datasets as data
from course_utils.evaluation import training
from course_utils.nets import samplers
from course_utils.records import results


def time_unit(train: data.ImageSet, repeats: int) -> float:
    net = samplers.build_network("convnet", train.info, 0)
    x, y = train.images[:256], train.labels[:256]
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        F.cross_entropy(net(x), y).backward()
        if i >= 2:  # two warm-up passes
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_floor(x: torch.Tensor, y: torch.Tensor, test: data.ImageSet, epochs: int, batch: int) -> float:
    """``epochs`` forward+backward passes over (x, y) plus one inference pass over ``test``."""
    net = samplers.build_network("convnet", test.info, 1)
    t0 = time.perf_counter()
    for _ in range(epochs):
        F.cross_entropy(net(x), y).backward()
    with torch.inference_mode():
        net.eval()
        for s in range(0, len(test), batch):
            net(test.images[s : s + batch])
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of the calibration unit")
    args = parser.parse_args()

    repro.seed_everything(0)
    train, test = data.load("mnist")
    idx = train.sample_balanced(10, repro.make_generator(0))
    x, y = train.images[idx], train.labels[idx]
    protocol = training.Protocol()

    unit = time_unit(train, args.repeats)
    floor = time_floor(x, y, test, args.epochs, protocol.test_batch_size)
    t0 = time.perf_counter()
    run = training.evaluate(x, y, test, num_models=1, epochs=args.epochs, seed=0, device="cpu")
    protocol_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "unit_s": round(unit, 4),
                "protocol_s": round(protocol_s, 2),
                "protocol_units": round(protocol_s / unit, 1),
                "floor_s": round(floor, 2),
                "floor_units": round(floor / unit, 1),
                "ratio_to_floor": round(protocol_s / floor, 3),
                "target_ratio": 1.1,
                "reference_dc_units": 134,
                "epochs": args.epochs,
                "accuracy": run.mean,
                "environment": results.environment("cpu"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
