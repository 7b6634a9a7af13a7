"""Profiles (quick / standard / full) and parameter validation for the notebooks.

Every notebook has one papermill ``parameters`` cell whose defaults are the quick profile's.
It calls ``resolve(profile, **parameters)``: a parameter left as ``None`` takes the profile's
value, an explicit one overrides it, and every value is checked (unknown dataset, model,
``ipc < 1`` ... raise ``ValueError`` naming the bad value and the valid ones).

papermill only *warns* about a parameter name the notebook does not declare, so a typo in a
sweep would silently run the defaults. ``check_notebook_parameters(globals())`` turns that into
an error: it reads the kernel's input history (``In``), finds the cell papermill injected
(it starts with ``# Parameters``) and compares its names with the annotated names of the
``parameters`` cell just before it.
"""

from __future__ import annotations

import ast
from types import MappingProxyType
from typing import Any, Mapping

from ..core import validate as checks

PROFILE_NAMES = ("quick", "standard", "full")
#: The defaults every notebook's parameters cell declares besides its profile (a test checks that they agree).
NOTEBOOK_DEFAULTS: Mapping[str, Any] = MappingProxyType({"dataset": "mnist", "seed": 0})
#: The datasets every notebook's claims were measured on, each in every profile's default settings: a claim of the
#: text holds for each of them (a margin that differs is stated per dataset). CIFAR needs a download: unchecked here.
CHECKED_DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist")

#: Settings shared by every notebook. quick = a 2-core laptop CPU (and CI), each notebook <= ~4 min;
#: standard = one GPU, minutes per notebook, close to the papers; full = the papers' settings.
PROFILES: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "quick": MappingProxyType(
            dict(
                device="auto",
                model="convnet",
                model_width=32,  # width-128 ConvNet costs ~1 s per 256-image step on 2 cores
                eval_protocol="plain",
                eval_epochs=50,  # cheap, and not a paper's protocol: tables say so
                eval_models=2,
                random_draws=2,
                test_per_class=200,  # evaluate on a class-balanced 2 000-image test subset
                full_epochs=1,  # full-data baseline: one epoch
                ipcs=(1, 10, 50),
                coreset_pool_per_class=500,  # herding / forgetting choose from 500 images per class
                forgetting_epochs=3,
            )
        ),
        "standard": MappingProxyType(
            dict(
                device="auto",
                model="convnet",
                model_width=128,
                eval_protocol="paper",
                eval_epochs=None,  # every row as the paper it is compared with (protocol.py)
                eval_models=5,
                random_draws=5,
                test_per_class=None,  # None = the whole test set
                full_epochs=10,
                ipcs=(1, 10, 50),
                coreset_pool_per_class=None,  # None = the whole training set
                forgetting_epochs=10,
            )
        ),
        "full": MappingProxyType(
            dict(
                device="auto",
                model="convnet",
                model_width=128,
                eval_protocol="paper",
                eval_epochs=None,
                eval_models=20,
                random_draws=5,
                test_per_class=None,
                full_epochs=50,
                ipcs=(1, 10, 50),
                coreset_pool_per_class=None,
                forgetting_epochs=20,
            )
        ),
    }
)


#: Settings only one notebook uses, per profile, merged over ``PROFILES`` by ``resolve(profile, notebook=...)``.
#: Each notebook owns its entry.
#: Notebook 06 on one GPU (its standard profile; full changes two values).
_ZEN_ONE_GPU: dict[str, Any] = dict(
    ipcs=(1, 10),
    train_per_class=None,
    pool=("convnet", "lenet", "vgg11", "resnet18"),
    pool_width=(None, None, None, None),
    zen_iterations=500,
    inner_steps=30,
    lr_net=0.02,
    lr_img=0.05,
    neumann_terms=5,
    baseline_methods=("dc", "dd"),
    dc_iterations=1000,
    dd_iterations=400,
    table_epochs=1000,
    table_models=3,
    cost_inner_steps=(1, 5, 10, 20, 30, 50),
)

#: Notebook 07 on one GPU (its standard profile; full changes two values).
_ACCDD_ONE_GPU: dict[str, Any] = dict(
    ipc=10,
    train_per_class=None,
    pool_networks=5,
    pool_epochs=2,
    accdd_iterations=100,
    outer_loop=100,
    inner_loop=8,
    batch_real=64,
    lr_img=1.0,
    magnitude=(0.01, 0.09),
    directions=2,
    snapshots=(10, 25, 50, 100),
)

#: Notebook 08: every registered method, one protocol. ``hparams``: per method its hyperparameters (integer keys:
#: per-IPC overrides; another IPC takes the entry of the largest listed IPC below it); ``prepare``: what is made once
#: per dataset (MTT's experts, Acc-DD's pool, ZEN's families, herding's embedding network, the kernel's feature map).
_ALL_METHODS = (
    "random",
    "herding",
    "forgetting",
    "krr_closed_form",
    "kip",
    "dd",
    "dc",
    "dsa",
    "dm",
    "mtt",
    "accdd",
    "zen",
)
_BENCHMARK_GPU: dict[str, Any] = dict(
    datasets=("mnist", "fashion_mnist"),
    methods=_ALL_METHODS,
    ipcs=(1, 10, 50),
    train_per_class=None,
    eval_protocol="dsa",  # ONE protocol for every row: DSA's (1000 epochs, DSA augmentation), as DSA, DM, MTT report
    eval_epochs=None,
    hparams={
        "random": {},
        "herding": {},
        "forgetting": {"epochs": 10},
        "krr_closed_form": {},
        "kip": {"steps": 3000, "batch_size": 5000, "lr_img": 0.01, "learn_labels": False},
        "dd": {
            "steps": 5000,
            "batch_size": 1024,
            "lr_img": 0.05,
            "step_lr": 0.02,
            "lr_init": 0.1,
            "decay_every": 1500,
        },
        "dc": {"batch_real": 256, "lr_img": 0.1, 1: {"steps": 1000}, 10: {"steps": 100}, 50: {"steps": 100}},
        "dsa": {"batch_real": 256, "lr_img": 0.1, 1: {"steps": 1000}, 10: {"steps": 100}, 50: {"steps": 100}},
        "dm": {"steps": 5000, "batch_real": 256, "lr_img": 1.0},
        "mtt": {
            "steps": 1000,
            "syn_steps": 20,
            "expert_epochs": 2,
            "max_start_epoch": 20,
            "lr_img": 1000.0,
            "lr_lr": 1e-5,
            "lr_teacher": 0.01,
        },
        "accdd": {"steps": 100, "outer_loop": 100, "inner_loop": 8, "batch_real": 64, "lr_img": 1.0},
        "zen": {
            "steps": 500,
            "inner_steps": 30,
            "lr_net": 0.02,
            "lr_img": 0.05,
            "neumann_terms": 5,
            "neumann_alpha": 0.02,
        },
    },
    prepare={
        "herding": {"epochs": 10},
        "krr_closed_form": {"feature_map": "random_network"},
        "kip": {"feature_map": "random_network"},
        "dd": {"model": "lenet"},
        "mtt": {"experts": 10, "epochs": 30},
        "accdd": {"networks": 5, "epochs": 2},
        "zen": {"pool": ("convnet", "lenet", "vgg11", "resnet18"), "pool_width": (None, None, None, None)},
    },
    cross_ipc=10,
    cross_methods=("random", "dc", "dsa", "dm", "mtt", "zen"),
    cross_archs=("convnet", "mlp", "lenet", "alexnet", "vgg11", "resnet18"),
    cross_widths=(None, None, None, None, None, None),  # None: the architecture's own
    cross_epochs=1000,  # the protocol's
    cross_models=3,
    nas_ipc=10,
    nas_methods=("random", "dc", "dsa", "dm", "mtt"),
    nas_depths=(1, 2, 3, 4),
    nas_widths=(32, 64, 256),
    nas_full_per_class=None,
    nas_full_epochs=10,
    folder_per_class=500,
    folder_ipc=10,
    folder_steps=2000,
)

NOTEBOOK_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "00_introduction_and_baselines": {"quick": {}, "standard": {}, "full": {}},
    "01_ridge_regression_closed_form": {
        # The closed forms always run at full size (all training images); only KIP is shortened.
        "quick": {
            "feature_map": "random_network",
            "kip_steps": 200,
            "kip_batch_size": 1000,
            "kip_lr_img": 0.01,
            "figure_datasets": ("mnist", "fashion_mnist"),
        },
        "standard": {
            "feature_map": "random_network",
            "kip_steps": 3000,
            "kip_batch_size": 5000,
            "kip_lr_img": 0.01,
            "figure_datasets": ("mnist", "fashion_mnist"),
        },
        "full": {
            "feature_map": "random_network",
            "kip_steps": 30000,
            "kip_batch_size": 5000,
            "kip_lr_img": 0.01,
            "figure_datasets": ("mnist", "fashion_mnist"),
        },  # KIP as in the paper; CIFAR by parameter
    },
    "02_bilevel_distillation": {
        # quick: several hundred outer steps with large Adam rates, LeNet, a reduced random-init run
        # (2 images/class, T=6)
        "quick": dict(
            model="lenet",
            dd_fixed_steps=1200,
            dd_random_steps=600,
            dd_random_ipc=2,
            dd_random_distill_steps=2,
            dd_distill_epochs=3,
            dd_batch_size=256,
            dd_lr_img=0.1,
            dd_step_lr=0.02,
            dd_lr_init=0.1,
            dd_decay_every=400,
            dd_eval_models=20,
            dd_checkpoint=False,
            cost_unroll_lengths=(1, 2, 4, 8, 16, 32),
            cost_batch_size=256,
        ),
        # standard (one GPU, not yet run): the paper's random-init setting (100 images, T=30, batch 1024), fewer steps
        "standard": dict(
            model="lenet",
            dd_fixed_steps=5000,
            dd_random_steps=5000,
            dd_random_ipc=10,
            dd_random_distill_steps=10,
            dd_distill_epochs=3,
            dd_batch_size=1024,
            dd_lr_img=0.05,
            dd_step_lr=0.02,
            dd_lr_init=0.1,
            dd_decay_every=1500,
            dd_eval_models=200,
            dd_checkpoint=True,
            cost_unroll_lengths=(1, 2, 4, 8, 16, 32, 64, 128),
            cost_batch_size=1024,
        ),
        # full: the reference defaults: 400 epochs of 59 real batches of 1024, Adam 0.01, η0 0.02,
        # halved every 40 epochs
        "full": dict(
            model="lenet",
            dd_fixed_steps=23600,
            dd_random_steps=23600,
            dd_random_ipc=10,
            dd_random_distill_steps=10,
            dd_distill_epochs=3,
            dd_batch_size=1024,
            dd_lr_img=0.01,
            dd_step_lr=0.01,
            dd_lr_init=0.02,
            dd_decay_every=2360,
            dd_eval_models=200,
            dd_checkpoint=True,
            cost_unroll_lengths=(1, 2, 4, 8, 16, 32, 64, 128),
            cost_batch_size=1024,
        ),
    },
    "03_gradient_matching": {
        # quick: 2 CPU cores. lr_img 1.0 (10x the papers') compresses the papers' 1000 outer iterations into 30;
        # 64 real images per class per matching step (the papers: 256); IPC 10 gets 2 iterations with a
        # 10-epoch inner loop (the schedule: 50); small cross-architecture and NAS budgets (the NAS reference
        # ranking trains each candidate on 100 real images per class for 20 epochs instead of the full data).
        "quick": dict(
            ipcs=(1, 10),
            ipc1_iterations=30,
            large_ipc_iterations=2,
            large_ipc_inner_loop=10,
            batch_real=64,
            lr_img=1.0,
            large_ipc_methods=("dc",),
            cross_ipc=1,
            cross_distil_archs=("convnet", "mlp"),
            cross_train_archs=("convnet", "mlp", "lenet", "alexnet", "vgg11", "resnet18"),
            cross_eval_models=1,
            cross_test_per_class=50,
            nas_ipc=10,
            nas_depths=(1, 2, 3, 4),
            nas_widths=(16,),
            nas_full_per_class=100,
            nas_full_epochs=20,
        ),
        # standard: one GPU, the papers' hyperparameters, 1000 iterations at IPC 1 and 100 at IPC 10/50.
        "standard": dict(
            ipcs=(1, 10, 50),
            ipc1_iterations=1000,
            large_ipc_iterations=100,
            large_ipc_inner_loop=None,
            batch_real=256,
            lr_img=0.1,
            large_ipc_methods=("dc", "dsa"),
            cross_ipc=10,
            cross_distil_archs=("convnet", "mlp", "lenet", "alexnet"),
            cross_train_archs=("convnet", "mlp", "lenet", "alexnet", "vgg11", "resnet18"),
            cross_eval_models=5,
            cross_test_per_class=None,
            nas_ipc=10,
            nas_depths=(1, 2, 3, 4),
            nas_widths=(32, 64, 256),
            nas_full_per_class=None,
            nas_full_epochs=10,
        ),
        # full: the papers' settings (1000 iterations everywhere, every architecture distils).
        "full": dict(
            ipcs=(1, 10, 50),
            ipc1_iterations=1000,
            large_ipc_iterations=1000,
            large_ipc_inner_loop=None,
            batch_real=256,
            lr_img=0.1,
            large_ipc_methods=("dc", "dsa"),
            cross_ipc=10,
            cross_distil_archs=("convnet", "mlp", "lenet", "alexnet", "vgg11", "resnet18"),
            cross_train_archs=("convnet", "mlp", "lenet", "alexnet", "vgg11", "resnet18"),
            cross_eval_models=10,
            cross_test_per_class=None,
            nas_ipc=10,
            nas_depths=(1, 2, 3, 4),
            nas_widths=(32, 64, 256),
            nas_full_per_class=None,
            nas_full_epochs=20,
        ),
    },
    "04_distribution_matching": {
        # quick: 2 CPU cores. 200 DM iterations (the paper: 20 000) with 64 real images per class (256); the DC run it
        # is compared with uses notebook 03's settings of the same profile; cost_ipcs are timed over cost_iterations.
        "quick": dict(
            ipcs=(1, 10), dm_iterations=200, batch_real=64, lr_img=1.0, cost_ipcs=(1, 10, 50), cost_iterations=2
        ),
        # standard: one GPU, the paper's hyperparameters, a quarter of its iterations.
        "standard": dict(
            ipcs=(1, 10, 50), dm_iterations=5000, batch_real=256, lr_img=1.0, cost_ipcs=(1, 10, 50), cost_iterations=5
        ),
        # full: the paper's settings.
        "full": dict(
            ipcs=(1, 10, 50), dm_iterations=20000, batch_real=256, lr_img=1.0, cost_ipcs=(1, 10, 50), cost_iterations=10
        ),
    },
    "05_trajectory_matching": {
        # quick: 2 CPU cores. Experts: 2 ConvNet-32 trained 5 epochs on a 300-per-class subset (MTT then distils from
        # that subset: a buffer belongs to its data); MTT: 10 student steps, target 2 epochs ahead, 60 iterations
        # (IPC 10 costs ~1 s per iteration at width 32 on 2 cores).
        "quick": dict(
            ipcs=(1, 10),
            experts=2,
            expert_train_epochs=5,
            expert_per_class=300,
            mtt_iterations=60,
            syn_steps=10,
            expert_epochs=2,
            max_start_epoch=3,
            lr_img=1000.0,
            lr_lr=1e-5,
            lr_teacher=0.01,
            zca=None,
            cost_syn_steps=(1, 2, 5, 10),
        ),
        # standard: one GPU. 10 experts × 30 epochs on the whole training set, 1000 iterations of N = 20.
        "standard": dict(
            ipcs=(1, 10, 50),
            experts=10,
            expert_train_epochs=30,
            expert_per_class=None,
            mtt_iterations=1000,
            syn_steps=20,
            expert_epochs=2,
            max_start_epoch=20,
            lr_img=1000.0,
            lr_lr=1e-5,
            lr_teacher=0.01,
            zca=None,
            cost_syn_steps=(1, 5, 10, 20, 40),
        ),
        # full: the reference code's defaults (buffer.py: 100 experts × 50 epochs; distill.py: 5000 iterations,
        # N = 20, M = 3, T+ = 25, lr_img 1000, lr_lr 1e-5); CIFAR's per-setting values are in papers.json.
        "full": dict(
            ipcs=(1, 10, 50),
            experts=100,
            expert_train_epochs=50,
            expert_per_class=None,
            mtt_iterations=5000,
            syn_steps=20,
            expert_epochs=3,
            max_start_epoch=25,
            lr_img=1000.0,
            lr_lr=1e-5,
            lr_teacher=0.01,
            zca=None,
            cost_syn_steps=(1, 5, 10, 20, 40),
        ),
    },
    "06_zen_cross_architecture": {
        # quick: 2 CPU cores. IPC 1 on 300 images per class; a narrow pool (ConvNet width 32, LeNet, VGG11 width 8;
        # ResNet18 is left to the standard pool: at width 8 it reaches 21 % on 10 real images under this budget, and
        # as the worst family it stalls the max); 40 ZEN steps of J = 10; DC per architecture as notebook 03's quick
        # IPC 1 run. The C\T table trains each set 300 epochs on every architecture (50 leave LeNet untrained).
        "quick": dict(
            ipcs=(1,),
            train_per_class=300,
            pool=("convnet", "lenet", "vgg11"),
            pool_width=(32, None, 8),
            zen_iterations=40,
            inner_steps=10,
            lr_net=0.02,
            lr_img=0.05,
            neumann_terms=5,
            baseline_methods=("dc",),
            dc_iterations=30,
            dd_iterations=30,
            table_epochs=300,
            table_models=1,
            cost_inner_steps=(1, 5, 10, 20),
        ),
        # standard: one GPU. MNIST IPC 1 and 10 (the slides' setting), the full-width pool, 500 ZEN steps of J = 30
        # (the reference's), DC and DD per architecture, the C\T table with the paper protocol's epochs.
        "standard": _ZEN_ONE_GPU,
        # full: the reference's 1000 outer steps, 5 networks per cell of the table
        "full": {**_ZEN_ONE_GPU, "zen_iterations": 1000, "table_models": 5},
    },
    "07_model_augmentation": {
        # quick: 2 CPU cores. IPC 10 on 300 training images per class (the pool and the distillation use the same
        # images); a pool of 3 ConvNet-32 trained 2 epochs (the paper: 5); each sampler gets 6 outer iterations of 10
        # matching steps with 8 real-data network updates between them (the paper: 500 of 100); the images are scored
        # after the iterations in `snapshots` for the curves.
        "quick": dict(
            ipc=10,
            train_per_class=300,
            pool_networks=3,
            pool_epochs=2,
            accdd_iterations=6,
            outer_loop=10,
            inner_loop=8,
            batch_real=64,
            lr_img=1.0,
            magnitude=(0.01, 0.09),
            directions=2,
            snapshots=(3, 6),
        ),
        # standard: one GPU. The whole training set, the paper's pool (5 networks, 2 epochs) and inner loop (100
        # matching steps per network), a fifth of its outer iterations.
        "standard": _ACCDD_ONE_GPU,
        # full: the reference's settings (500 outer iterations of 100 matching steps; IDC's own runs use 2000).
        "full": {**_ACCDD_ONE_GPU, "accdd_iterations": 500, "snapshots": (50, 100, 250, 500)},
    },
    "08_benchmark_and_applications": {
        # quick: 2 CPU cores, the whole notebook in about 4 minutes. MNIST, 100 training images per class, IPC 1 and 10,
        # every method with a budget of seconds (the papers': hours); the profile's plain protocol (50 epochs, no
        # augmentation) for every row.
        "quick": dict(
            datasets=None,  # None: the notebook's dataset only
            methods=_ALL_METHODS,
            ipcs=(1, 10),
            train_per_class=100,
            test_per_class=100,  # 1 000 test images: the table has 24 cells
            hparams={
                "random": {},
                "herding": {},
                "forgetting": {"epochs": 3},
                "krr_closed_form": {},
                "kip": {"steps": 100, "batch_size": 500, "lr_img": 0.01, "learn_labels": False},
                "dd": {
                    "batch_size": 256,
                    "lr_img": 0.1,
                    "step_lr": 0.02,
                    "lr_init": 0.1,
                    1: {"steps": 60},
                    10: {"steps": 10},
                    50: {"steps": 5},
                },
                "dc": {
                    "batch_real": 64,
                    "lr_img": 1.0,
                    1: {"steps": 15},
                    10: {"steps": 1, "inner_loop": 5},
                    50: {"steps": 1, "inner_loop": 2},
                },
                "dsa": {
                    "batch_real": 64,
                    "lr_img": 1.0,
                    1: {"steps": 15},
                    10: {"steps": 1, "inner_loop": 5},
                    50: {"steps": 1, "inner_loop": 2},
                },
                "dm": {"batch_real": 64, "lr_img": 1.0, 1: {"steps": 50}, 10: {"steps": 30}, 50: {"steps": 10}},
                "mtt": {
                    "syn_steps": 10,
                    "expert_epochs": 2,
                    "max_start_epoch": 4,
                    "lr_img": 1000.0,
                    "lr_lr": 1e-5,
                    "lr_teacher": 0.01,
                    1: {"steps": 40},
                    10: {"steps": 6},
                    50: {"steps": 3},
                },
                "accdd": {
                    "outer_loop": 5,
                    "inner_loop": 4,
                    "batch_real": 64,
                    "lr_img": 1.0,
                    1: {"steps": 3},
                    10: {"steps": 2},
                    50: {"steps": 1},
                },
                "zen": {
                    "inner_steps": 10,
                    "lr_net": 0.02,
                    "lr_img": 0.05,
                    "neumann_terms": 5,
                    "neumann_alpha": 0.02,
                    1: {"steps": 15},
                    10: {"steps": 4},
                    50: {"steps": 2},
                },
            },
            prepare={
                "herding": {"epochs": 1},
                "krr_closed_form": {"feature_map": "random_network"},
                "kip": {"feature_map": "random_network"},
                "dd": {"model": "lenet"},
                "mtt": {"experts": 2, "epochs": 6},
                "accdd": {"networks": 2, "epochs": 1},
                "zen": {"pool": ("convnet", "lenet", "vgg11"), "pool_width": (32, None, 8)},
            },
            cross_ipc=1,
            cross_methods=("random", "dc", "dm", "mtt", "zen"),
            cross_archs=("convnet", "mlp", "lenet", "vgg11"),
            cross_widths=(32, None, None, 16),  # a narrow VGG11: a CPU budget
            cross_epochs=100,  # LeNet barely moves from chance in 50
            cross_models=1,
            nas_ipc=10,
            nas_methods=("random", "dc", "dm"),
            nas_depths=(1, 2, 3, 4),
            nas_widths=(16,),
            nas_full_per_class=100,
            nas_full_epochs=20,
            folder_per_class=30,
            folder_ipc=1,
            folder_steps=100,
        ),
        # standard: one GPU; MNIST and Fashion-MNIST at IPC 1, 10, 50 on the whole training set, the papers'
        # hyperparameters (methods.md) with shortened iteration counts, every row scored by DSA's protocol.
        "standard": _BENCHMARK_GPU,
        # full: the papers' iteration counts, 10 networks per set.
        "full": {
            **_BENCHMARK_GPU,
            "eval_models": 10,
            "hparams": {
                **_BENCHMARK_GPU["hparams"],
                "kip": {"steps": 30000, "batch_size": 5000, "lr_img": 0.01, "learn_labels": False},
                "dc": {"batch_real": 256, "lr_img": 0.1, "steps": 1000},
                "dsa": {"batch_real": 256, "lr_img": 0.1, "steps": 1000},
                "dm": {"steps": 20000, "batch_real": 256, "lr_img": 1.0},
                "mtt": {**_BENCHMARK_GPU["hparams"]["mtt"], "steps": 5000, "expert_epochs": 3, "max_start_epoch": 25},
                "accdd": {**_BENCHMARK_GPU["hparams"]["accdd"], "steps": 500},
                "zen": {**_BENCHMARK_GPU["hparams"]["zen"], "steps": 1000},
            },
            "prepare": {**_BENCHMARK_GPU["prepare"], "mtt": {"experts": 100, "epochs": 50}},
        },
    },
}


class Settings(dict):
    """A dict with attribute access (``cfg.eval_epochs``) that records what a run used."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no setting {name!r}; known: {', '.join(sorted(self))}") from None

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.items()}

    def parameters(self) -> dict:
        """The settings a notebook's parameters cell can set (those ``resolve`` was given), e.g. to print them."""
        return {k: self[k] for k in getattr(self, "_parameters", self) if k in self}


_POSITIVE_SUFFIXES = ("_epochs", "_models", "_width", "_steps", "_iterations", "_size", "_draws", "experts", "_epoch")


def _check_one(key: str, value: Any) -> None:
    from ..data import datasets as data
    from ..evaluation import protocol
    from ..nets import models

    if key == "profile":
        checks.choice(key, value, PROFILE_NAMES)
    elif key == "dataset":
        data.dataset_info(value)  # raises with the list of valid datasets
    elif key in ("model", "models", "pool"):
        for name in [value] if isinstance(value, str) else value:
            if str(name).lower() not in models.MODEL_NAMES:
                raise ValueError(f"{key}: unknown model {name!r}; valid: {', '.join(models.MODEL_NAMES)}")
    elif key == "eval_protocol":
        checks.choice(key, value, (*protocol.PROTOCOL_NAMES, "paper"))
    elif key == "seed":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"seed must be a non-negative integer, got {value!r}")
    elif key == "zca":
        if value is not None and not isinstance(value, bool):
            raise ValueError(f"zca must be True, False or None (the paper's choice for the dataset), got {value!r}")
    elif key == "pool_width":
        for w in value:
            checks.positive_int("pool_width", w, allow_none=True)  # None: the architecture's own width
    elif key == "baseline_methods":
        for name in value:
            checks.choice("baseline_methods", name, ("dc", "dd", "dsa", "dm"))
    elif key in ("lr_img", "lr_lr", "lr_teacher", "lr_net"):
        checks.positive_number(key, value)
    elif key in ("ipcs", "cost_ipcs", "cost_syn_steps", "cost_inner_steps"):
        if not value:
            raise ValueError("ipcs must list at least one images-per-class value")
        for ipc in value:
            checks.positive_int("ipc", ipc)
    elif key == "magnitude":  # Acc-DD's perturbation: rho ~ ±U(low, high)
        from ..nets.samplers import check_perturbation

        check_perturbation(value, 1)
    elif key == "snapshots":
        if not value:
            raise ValueError("snapshots must list at least one outer iteration")
        for step in value:
            checks.positive_int("snapshot", step)
    elif key in ("directions", "outer_loop", "inner_loop", "batch_real", "pool_networks"):
        checks.positive_int(key, value)
    elif key == "eval_epochs":
        checks.positive_int(key, value, allow_none=True)  # None = the protocol's own
    elif key == "ipc" or key.endswith(_POSITIVE_SUFFIXES):
        checks.positive_int(key, value)
    elif key.endswith("per_class"):
        checks.positive_int(key, value, allow_none=True)  # None = use every image
    elif key == "device" and value != "auto" and value != "cpu" and not str(value).startswith("cuda"):
        raise ValueError(f"device={value!r} is not valid; valid: auto, cpu, cuda, cuda:N")


def validate(settings: Mapping[str, Any]) -> None:
    """Check the values every notebook shares; raise ``ValueError`` naming the bad one."""
    for key, value in settings.items():
        _check_one(key, value)


def resolve(profile: str = "quick", notebook: str | None = None, **parameters: Any) -> Settings:
    """Settings of ``profile`` (and of ``notebook``'s own entry) with every non-``None`` parameter overriding.

    >>> resolve("quick", dataset="fashion_mnist").eval_epochs
    50
    """
    checks.choice("profile", profile, PROFILE_NAMES)
    settings = Settings(PROFILES[profile])
    if notebook is not None:
        checks.choice("notebook", notebook, tuple(NOTEBOOK_PROFILES))
        settings.update(NOTEBOOK_PROFILES[notebook][profile])
    settings["profile"] = profile
    settings._parameters = ("profile", *parameters)
    for key, value in parameters.items():
        if value is not None:
            settings[key] = tuple(value) if isinstance(value, list) else value
    validate(settings)
    return settings


def is_checked(settings: Mapping[str, Any], notebook: str | None = None) -> bool:
    """Whether the text's claims were measured for ``settings``: ``notebook``'s defaults for their profile with any
    device and any dataset of ``CHECKED_DATASETS``. ``claims.check`` is strict there and reports elsewhere.

    >>> is_checked(resolve("quick", dataset="fashion_mnist", seed=0)), is_checked(resolve("quick", seed=0, ipcs=[3]))
    (True, False)
    """
    if settings.get("dataset") not in CHECKED_DATASETS:
        return False
    defaults = {**NOTEBOOK_DEFAULTS, "dataset": settings["dataset"]}
    reference = resolve(settings["profile"], notebook=notebook, **defaults)
    return {k: v for k, v in settings.items() if k != "device"} == {k: v for k, v in reference.items() if k != "device"}


def _assigned_names(source: str, *, annotated_only: bool) -> list[str]:
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif isinstance(node, ast.Assign) and not annotated_only:
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


def check_notebook_parameters(namespace: Mapping[str, Any]) -> list[str]:
    """Raise if papermill injected a parameter that the notebook's ``parameters`` cell does not declare.

    Returns the declared names (empty when the notebook was not run by papermill). Works from the
    kernel's input history: papermill executes the injected cell (first line ``# Parameters``)
    right after the tagged ``parameters`` cell, whose parameters are annotated (``name: type = value``).
    """
    history = namespace.get("In")
    if not isinstance(history, list):
        return []
    for i in range(len(history) - 1, 0, -1):
        if history[i].lstrip().startswith("# Parameters"):
            injected = _assigned_names(history[i], annotated_only=False)
            declared = _assigned_names(history[i - 1], annotated_only=True)
            unknown = [n for n in injected if n not in declared]
            if unknown:
                raise ValueError(
                    f"unknown parameter(s) {', '.join(map(repr, unknown))}: this notebook declares "
                    f"{', '.join(declared)}"
                )
            return declared
    return []
