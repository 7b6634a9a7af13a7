"""Time to accuracy of Acc-DD's model augmentation against fresh networks (a script, not a test).

Setting (defaults, ≤ 10 min on 2 CPU cores): MNIST, a class-balanced subset of ``--per-class`` training images per
class, ConvNet width ``--width`` (depth 3, instance norm), IPC ``--ipc``, real initialisation. Three runs of
``methods.accdd`` under the same hyperparameters, the same budget of ``--steps`` outer iterations and the same seed,
differing only in the network sampler (``model=``):

- ``fresh``: (a) a fresh random network every outer iteration (IDC without multi-formation);
- ``early_stage``: (b) the early-stage pool, networks as trained;
- ``early_stage_perturbed``: (c) the same pool, every draw perturbed along random filter-normalised directions
  (Acc-DD).

The pool (``--pool-networks`` networks trained ``--pool-epochs`` epochs on the same subset, ``accdd.early_stage_pool``
in a fresh temporary folder, so it is trained and timed in this process) is built once; its training time is counted
for (b) and (c). Every run's images are snapshot through the callback after the outer iterations listed in
``--snapshots`` (and at step 0, the real initialisation); after all runs every snapshot is scored under one protocol
(``--eval-protocol`` with ``--eval-epochs``, ``--eval-models`` fresh ConvNets of the same width, a class-balanced
test subset of ``--test-per-class`` images per class). Evaluation time is not counted.

Figures (JSON on stdout, and in ``--out`` when given):

- ``unit_s``: one forward+backward of the ConvNet on 256 MNIST images, measured first (the course's unit);
- per variant: the distillation seconds at every snapshot (the loop's own clock, ``StepEvent.seconds``), the
  pool's seconds (0 for fresh networks), the accuracy at every snapshot (mean ± std over the networks);
- ``target_accuracy``: what (a) reaches at the end of its budget;
- per variant ``time_to_target_s``: pool seconds + distillation seconds at the first snapshot after step 0 whose
  mean accuracy is ≥ the target (None if none is); ``ratio_to_fresh`` = that / (a)'s total distillation time.

The issue's target: ``ratio_to_fresh`` of (c) ≤ 1/3 (the paper reports Acc-DD at IDC's accuracy in about a fifth of
its GPU time on CIFAR-10). The measured ratio is reported whatever it is.

    python benchmarks/bench_accdd.py [--steps 8] [--snapshots 1,2,3,4,6,8] [--out benchmarks/accdd_cpu_2core.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import sync, timed  # benchmarks/timing.py, beside this script

from course_utils import __version__, methods
from course_utils.core import repro
from course_utils.data import datasets as data
from course_utils.evaluation import training
from course_utils.methods import accdd
from course_utils.nets import samplers
from course_utils.records import results
from course_utils.records.synthetic import class_labels, initial_images

VARIANT_ORDER = ("fresh", "early_stage", "early_stage_perturbed")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except OSError:
        return None


def distill_with_snapshots(train, sampler, args, hparams, snapshots: set[int], device) -> dict:
    """One run; the images (CPU copies) and the loop's seconds at every snapshot step."""
    taken: dict[int, tuple[float, torch.Tensor]] = {}

    def callback(event):
        if event.step in snapshots:
            taken[event.step] = (event.seconds, event.images.detach().cpu().clone())

    generator = repro.run_generator(args.seed, "accdd", train.name, args.ipc, "bench")
    t0 = time.perf_counter()
    syn = methods.distill(
        "accdd", train, args.ipc, generator=generator, model=sampler, callback=callback, steps=args.steps, **hparams
    )
    sync(device)
    wall = time.perf_counter() - t0
    return {"syn": syn, "snapshots": taken, "wall_s": wall}


def score(images: torch.Tensor, test, args, device) -> dict:
    r = training.evaluate(
        images.to(device),
        class_labels(test.num_classes, args.ipc, device),
        test,
        protocol=args.eval_protocol,
        epochs=args.eval_epochs,
        model="convnet",
        model_kwargs={"width": args.width},
        num_models=args.eval_models,
        seed=args.seed,
        device=device,
    )
    return {"mean": round(r.mean, 2), "std": round(r.std, 2) if r.std is not None else None, "accuracies": r.accuracies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--per-class", type=int, default=300, help="training images per class (subset)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--steps", type=int, default=8, help="outer iterations per variant (the budget)")
    parser.add_argument("--snapshots", default="1,2,3,4,6,8", help="outer iterations after which the images are scored")
    parser.add_argument("--outer-loop", type=int, default=20, help="matching steps per drawn network")
    parser.add_argument("--inner-loop", type=int, default=8, help="real-data network updates between matching steps")
    parser.add_argument("--batch-real", type=int, default=64)
    parser.add_argument("--lr-img", type=float, default=1.0)
    parser.add_argument("--pool-networks", type=int, default=5)
    parser.add_argument("--pool-epochs", type=int, default=2)
    parser.add_argument("--eval-protocol", default="plain")
    parser.add_argument("--eval-epochs", type=int, default=50)
    parser.add_argument("--eval-models", type=int, default=3)
    parser.add_argument("--test-per-class", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()

    t_start = time.perf_counter()
    device = repro.resolve_device(args.device)
    repro.seed_everything(args.seed)
    train_all, test_all = data.load(args.dataset)
    train = train_all.balanced_subset(args.per_class, repro.make_generator(args.seed)).to(device)
    test = test_all.balanced_subset(args.test_per_class, repro.make_generator(0)).to(device)
    snapshots = sorted({int(s) for s in args.snapshots.split(",")} | {args.steps})
    if snapshots[0] < 1 or snapshots[-1] > args.steps:
        raise SystemExit(f"--snapshots must lie in 1..{args.steps}, got {args.snapshots}")

    unit_net = samplers.build_network("convnet", train.info, 0, device, width=args.width)
    x_unit, y_unit = train.images[:256], train.labels[:256]
    unit_s = statistics.median(
        timed(lambda: F.cross_entropy(unit_net(x_unit), y_unit).backward(), device) for _ in range(7)
    )

    hparams = {
        "outer_loop": args.outer_loop,
        "inner_loop": args.inner_loop,
        "batch_real": args.batch_real,
        "lr_img": args.lr_img,
    }
    defaults = accdd.Config()
    with tempfile.TemporaryDirectory(prefix="accdd_pool_") as root:
        t0 = time.perf_counter()
        pool, pool_seconds = accdd.early_stage_pool(
            train,
            args.pool_networks,
            args.pool_epochs,
            model_kwargs={"width": args.width},
            lr=defaults.lr_net,
            momentum=defaults.momentum_net,
            weight_decay=defaults.weight_decay_net,
            batch_size=defaults.batch_net,
            seed=args.seed,
            root=root,
        )
        sync(device)
        pool_wall = time.perf_counter() - t0
    variants = {
        "fresh": samplers.FreshInit("convnet", width=args.width),
        "early_stage": pool.without_perturbation(),
        "early_stage_perturbed": pool,
    }
    runs = {
        name: distill_with_snapshots(train, s, args, hparams, set(snapshots), device) for name, s in variants.items()
    }

    # scoring, not timed: every snapshot under the same protocol. The three runs start from the same images (the
    # same generator stream draws them first); step 0 is that real initialisation.
    init_images = initial_images(
        train, args.ipc, "real", repro.run_generator(args.seed, "accdd", train.name, args.ipc, "bench")
    )
    init_score = score(init_images, test, args, device)
    report_variants = {}
    for name in VARIANT_ORDER:
        run = runs[name]
        pretrain = 0.0 if name == "fresh" else pool_seconds
        curve = [{"step": 0, "seconds": 0.0, "accuracy": init_score}]
        for step in snapshots:
            seconds, images = run["snapshots"][step]
            curve.append({"step": step, "seconds": round(seconds, 2), "accuracy": score(images, test, args, device)})
        report_variants[name] = {
            "pretrain_s": round(pretrain, 2),
            "distill_s": round(run["syn"].meta["seconds"], 2),
            "distill_units": round(run["syn"].meta["seconds"] / unit_s, 1),
            "curve": curve,
        }
    target = report_variants["fresh"]["curve"][-1]["accuracy"]["mean"]
    fresh_total = report_variants["fresh"]["distill_s"]
    for rep in report_variants.values():
        reached = next((p for p in rep["curve"][1:] if p["accuracy"]["mean"] >= target), None)
        rep["time_to_target_s"] = None if reached is None else round(rep["pretrain_s"] + reached["seconds"], 2)
        rep["step_to_target"] = None if reached is None else reached["step"]
        rep["ratio_to_fresh"] = None if reached is None else round(rep["time_to_target_s"] / fresh_total, 3)
        rep["final_accuracy"] = rep["curve"][-1]["accuracy"]["mean"]
    ratio_c = report_variants["early_stage_perturbed"]["ratio_to_fresh"]
    report = {
        "benchmark": "accdd_time_to_accuracy",
        "setting": {
            "dataset": args.dataset,
            "train_images": len(train),
            "per_class": args.per_class,
            "model": f"convnet (width {args.width}, depth 3, instance norm)",
            "ipc": args.ipc,
            "steps": args.steps,
            "snapshots": snapshots,
            "hparams": {**hparams, "distance": defaults.distance, "strategy": defaults.strategy},
            "pool": {
                "networks": args.pool_networks,
                "epochs": args.pool_epochs,
                "batch_size": defaults.batch_net,
                "magnitude": list(defaults.magnitude),
                "directions": defaults.directions,
            },
            "evaluation": {
                "protocol": args.eval_protocol,
                "epochs": args.eval_epochs,
                "models": args.eval_models,
                "test_images": len(test),
                "counted": False,
            },
            "seed": args.seed,
        },
        "unit_s": round(unit_s, 4),
        "pool_seconds": round(pool_seconds, 2),
        "pool_wall_s": round(pool_wall, 2),
        "target_accuracy": target,
        "variants": report_variants,
        "ratio_c_to_a": ratio_c,
        "target_ratio_max": round(1 / 3, 3),
        "met": ratio_c is not None and ratio_c <= 1 / 3,
        "environment": {**results.environment(device), "course_utils": __version__, "commit": git_commit()},
        "total_wall_s": None,
    }
    report["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
