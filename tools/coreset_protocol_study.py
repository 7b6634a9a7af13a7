"""Why do herding and forgetting sit below the DC paper's Table 1? A study on MNIST (CPU is enough).

One ConvNet (width 128) is trained on the full training set for ``--epochs`` epochs with the plain protocol; its
features drive herding, and the forgetting events of the same run (every example is seen once per epoch) drive
forgetting. The coresets at IPC 1 and 10 (random over several draws, herding, forgetting with never-learned
examples first as Toneva et al., and forgetting with them last: ``never_learned="last"``) are then
evaluated under two protocols: "plain" (300 epochs, no augmentation: the course's earlier standard profile) and
"dc" (the DC paper's evaluate_synset: one of crop / scale / rotate per image, 1000 epochs). Every evaluation is
written as a record under ``results/00_coreset_protocol_study/`` (parameters, seed, device, versions).

    python tools/coreset_protocol_study.py [--epochs 4] [--nets 3] [--ipc10-nets 1] [--draws 5] [--ipc10-draws 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from course_utils import methods
from course_utils.core import repro
from course_utils.course import experiment
from course_utils.data import datasets as data
from course_utils.evaluation import protocol, training
from course_utils.methods import forgetting
from course_utils.records import results

EXPERIMENT = "00_coreset_protocol_study"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4, help="epochs of the full-data run (features + forgetting)")
    parser.add_argument("--nets", type=int, default=3, help="networks per set at IPC 1")
    parser.add_argument("--ipc10-nets", type=int, default=1, help="networks per set at IPC 10")
    parser.add_argument("--draws", type=int, default=5, help="random subsets at IPC 1")
    parser.add_argument("--ipc10-draws", type=int, default=2, help="random subsets at IPC 10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(results.COMMITTED_DIR))
    parser.add_argument("--train-per-class", type=int, default=None, help="a balanced subset (a smoke test), None: all")
    parser.add_argument("--eval-epochs", type=int, default=None, help="override the protocols' epochs (a smoke test)")
    args = parser.parse_args()

    repro.seed_everything(args.seed)
    device = str(repro.resolve_device(args.device))
    train, test = data.load("mnist")
    if args.train_per_class:
        train = train.balanced_subset(args.train_per_class, repro.make_generator(args.seed))
    train, test = train.to(device), test.to(device)
    cfg = {"seed": args.seed, "device": device, "profile": "study", "dataset": "mnist"}

    tracker = forgetting.ForgettingTracker(len(train), train.device)
    t0 = time.perf_counter()
    net, full = training.train_full(
        train, test, epochs=args.epochs, model="convnet", seed=args.seed, device=device, on_batch=tracker
    )
    print(f"full data, {args.epochs} epochs: {full.mean:.2f} % in {time.perf_counter() - t0:.0f} s", flush=True)
    experiment.save_result(
        EXPERIMENT,
        method="full_data",
        dataset="mnist",
        cfg=cfg,
        result=full,
        params={"epochs": args.epochs, "model": "convnet", "width": 128},
        timings={"train": full.train_seconds[0]},
        folder=args.out,
    )
    scores = tracker.scores()
    never = int((~tracker.learned).sum())
    stats = forgetting.ForgettingStatistics(
        torch.arange(len(train), device=train.device),
        scores,
        args.epochs,
        {"sampler": "the full-data network above"},
        never,
    )
    print(f"forgetting: {never} never learned; events mean {scores[scores.isfinite()].mean():.3f}", flush=True)

    for ipc, nets, draws in ((1, args.nets, args.draws), (10, args.ipc10_nets, args.ipc10_draws)):
        sets = {}
        for d in range(draws):
            g = repro.run_generator(args.seed, "random", "mnist", ipc, "", f"draw{d}")
            sets[f"random/draw{d}"] = methods.distill("random", train, ipc, generator=g)
        g = repro.run_generator(args.seed, "herding", "mnist", ipc)
        sets["herding"] = methods.distill("herding", train, ipc, generator=g, model=net)
        for name, rule in (("forgetting", "first"), ("forgetting_learned_only", "last")):
            g = repro.run_generator(args.seed, name, "mnist", ipc)
            sets[name] = methods.distill("forgetting", train, ipc, generator=g, statistics=stats, never_learned=rule)
        for proto_name in ("plain", "dc"):
            proto = protocol.named(proto_name, "mnist", args.eval_epochs)
            for name, syn in sets.items():
                t1 = time.perf_counter()
                res = training.evaluate(
                    syn.images,
                    syn.labels,
                    test,
                    protocol=proto,
                    model="convnet",
                    num_models=nets,
                    seed=args.seed,
                    device=device,
                )
                method, _, draw = name.partition("/")
                experiment.save_result(
                    EXPERIMENT,
                    method=method,
                    dataset="mnist",
                    cfg=cfg,
                    result=res,
                    params={
                        "ipc": ipc,
                        "draw": draw,
                        "feature_epochs": args.epochs,
                        "never_learned": never,
                        "protocol": proto_name,
                    },
                    timings={"evaluate": time.perf_counter() - t1},
                    folder=args.out,
                )
                print(f"ipc {ipc:>2} {proto.label:>45} {name:>26}: {res}", flush=True)


if __name__ == "__main__":
    main()
