"""Which pool does notebook 06's quick profile run ZEN on? The choice, made on a validation split.

ZEN (quick settings of notebook 06: IPC 1, 40 outer steps of J = 10, 300 training images per class) is run on two
pools: the three families ConvNet-32, LeNet and VGG11-8, and the same with ResNet18-8 added. Each set, and a random
real subset of the same size, is trained on all four families (plain protocol, ``table_epochs`` epochs, one network
per cell) and scored on ``validation_per_class`` training images per class that the notebook does not learn from
(``course.setup(...).load_data(validation_per_class=...)``): never on test images. The time of one outer step is
measured too. Every score is written as a record under ``results/06_zen_pool_choice/`` (parameters, seed, device,
versions).

    python tools/zen_pool_choice.py [--dataset mnist] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
import warnings

from course_utils import course, experiment, hypergrad, methods, samplers
from course_utils.core import repro
from course_utils.records import results

EXPERIMENT = "06_zen_pool_choice"
PARAMETERS = 'profile: str = "quick"\ndataset: str = "mnist"\nseed: int = 0\ndevice: str = "cpu"\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(results.COMMITTED_DIR))
    args = parser.parse_args()
    namespace: dict = {}
    exec(PARAMETERS, namespace)  # the parameters cell of a notebook, as course.setup reads it
    namespace.update(dataset=args.dataset, seed=args.seed)
    cfg = course.setup(namespace, notebook="06_zen_cross_architecture")
    train, val, _ = cfg.load_data(validation_per_class=cfg.validation_per_class)
    three = {name: samplers.sized(name, w) for name, w in zip(cfg.pool, cfg.pool_width)}
    four = {**three, "resnet18": samplers.sized("resnet18", 8)}
    settings = dict(
        steps=cfg.zen_iterations,
        inner_steps=cfg.inner_steps,
        lr_net=cfg.lr_net,
        lr_img=cfg.lr_img,
        neumann_terms=cfg.neumann_terms,
        neumann_alpha=cfg.lr_net,
    )
    ipc = max(cfg.ipcs)
    sets, seconds = {}, {}
    sets["random"] = methods.distill("random", train, ipc, generator=repro.run_generator(args.seed, "pool choice", "random"))
    for label, pool in (("zen, 3 families", three), ("zen, 4 families (+ resnet18)", four)):
        gen = repro.run_generator(args.seed, "pool choice", label)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hypergrad.NeumannDivergenceWarning)
            sets[label] = methods.distill(
                "zen", train, ipc, generator=gen, model=samplers.ArchitecturePool(list(pool.values())), **settings
            )
        seconds[label] = (time.perf_counter() - t0) / cfg.zen_iterations
    table = experiment.cross_architecture(
        sets, val, four, protocol="plain", epochs=cfg.table_epochs, num_models=cfg.table_models, seed=args.seed,
        device=cfg.device,
    )
    print(f"{args.dataset}, IPC {ipc}: validation accuracy ({len(val)} images), plain protocol, {cfg.table_epochs} epochs\n")
    print(experiment.cross_architecture_markdown(table))
    for label, s in seconds.items():
        print(f"{label}: {s:.2f} s per outer step")
    for (row, col), cell in table.items():
        experiment.save_result(
            EXPERIMENT,
            method="random" if row == "random" else "zen",
            dataset=args.dataset,
            cfg=cfg,
            params={"set": row, "trained_on": col, "ipc": ipc, "split": "validation", "zen": settings,
                    "seconds_per_step": seconds.get(row)},
            result=cell,
            folder=args.out,
        )


if __name__ == "__main__":
    main()
