"""Benchmark of the closed-form KRR distillation (Chen, Huang & Weng, NeurIPS 2024) on a full training set.

Prints one JSON object. For every feature map:
- ``distill_s``: the whole IPC-1 distillation, ``krr_closed_form.distill(train, 1, ...)`` on all training images:
  feature map, λ selection on a 5 % validation split, the full-data model, the closed form, the recovery of
  the images through the feature map's inverse (median over ``--repeats`` runs; ``distill_s_runs`` holds all);
- ``breakdown_s``: the same run split into its stages (from the set's metadata);
- ``ratio_to_gram``: ``distill_s`` / ``gram_s``, where ``gram_s`` is ONE Gram product φφᵀ (p×p over all n
  training images, float64, features already in memory) measured in the same process: the floor of any
  method that fits ridge regression on all the data;
- ``full_accuracy`` / ``distilled_accuracy`` (% on the whole test set): the full-data ridge model and the model
  trained on the returned distilled set (its float32 images, λ_S = 0), ``predictions_agree`` whether the two
  predict every test image alike, ``rel_error`` = ‖W_S − W‖/‖W‖ in float64 (from the set's metadata) and
  ``rel_error_float32_images`` for the stored float32 images.
Targets (MNIST, IPC 1): distilled accuracy equal to the full-data one, whole distillation <= 10 s on 2 CPU cores.

    python benchmarks/bench_krr.py [--dataset mnist] [--maps random_network identity random_fourier] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from course_utils.core import repro
from course_utils.data import datasets as data
from course_utils.methods import feature_maps, ridge
from course_utils.methods import krr_closed_form as kcf
from course_utils.records import results


def time_gram(images: torch.Tensor, repeats: int) -> float:
    F = images.flatten(1).to(torch.float64)
    F.T @ F  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        F.T @ F
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_map(name: str, train: data.ImageSet, test: data.ImageSet, seed: int, repeats: int) -> dict:
    runs, syn = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        syn = kcf.distill(train, 1, generator=repro.make_generator(seed), feature_map=name)
        runs.append(time.perf_counter() - t0)
    # The same seed gives the same feature map, split and λ: refit (untimed) to compare with the full model.
    full = kcf.fit_full_model(train, name, generator=repro.make_generator(seed))
    assert full.lam == syn.meta["lam"], (full.lam, syn.meta["lam"])
    fmap = feature_maps.from_spec(syn.meta["feature_map"])
    F_test = full.features(test.images)
    W_S = ridge.support_model(fmap(syn.images, torch.float64), ridge.one_hot(syn.labels, train.num_classes))
    agree = (ridge.predict(W_S, F_test).argmax(1) == ridge.predict(full.W, F_test).argmax(1)).double().mean()
    return {
        "distill_s": statistics.median(runs),
        "distill_s_runs": runs,
        "breakdown_s": {
            **{k: v for k, v in syn.meta["timing"].items() if k != "full_model"},
            **{f"full_model.{k}": v for k, v in full.seconds.items()},
        },
        "lam": full.lam,
        "full_accuracy": full.accuracy(test, F_test),
        "distilled_accuracy": ridge.accuracy(W_S, F_test, test.labels),
        "predictions_agree": bool(agree == 1),
        "agree_fraction": float(agree),
        "rel_error": syn.meta["rel_error"],
        "rel_error_float32_images": ridge.relative_error(W_S, full.W),
        "recovery_residual": syn.meta["recovery_residual"],
        "out_of_range": syn.meta["out_of_range"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument(
        "--maps", nargs="+", default=["random_network", "identity", "random_fourier"], choices=feature_maps.FEATURE_MAPS
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    repro.seed_everything(args.seed)
    train, test = data.load(args.dataset)
    out = {
        "dataset": train.name,
        "n_train": len(train),
        "p": train.images[0].numel(),
        "ipc": 1,
        "torch_threads": torch.get_num_threads(),
    }
    out["gram_s"] = time_gram(train.images, args.repeats)
    out["maps"] = {}
    for name in args.maps:
        row = bench_map(name, train, test, args.seed, args.repeats)
        row["ratio_to_gram"] = row["distill_s"] / out["gram_s"]
        out["maps"][name] = row
    out["environment"] = results.environment("cpu")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
