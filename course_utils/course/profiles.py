"""The values of the profiles, and what each notebook's parameters mean to the package. Data only.

- ``PROFILES``: the settings every notebook shares, per profile (quick / standard / full).
- ``NOTEBOOK_PROFILES``: each notebook's own settings, per profile, merged over ``PROFILES``.
- ``METHOD_PARAMETERS``: which notebook parameter feeds which field of a method's ``Config``
  (``course_utils/methods/<name>.py``); those values are checked by the ``Config`` itself.
- ``DATA``: how a notebook draws its training set; ``OWN_PARAMETERS``: parameters a notebook reads itself, which
  are no setting (not in ``cfg``).

quick = a 2-core laptop CPU (and CI), each notebook <= ~4 min; standard = one GPU, minutes per notebook, close to
the papers; full = the papers' settings. quick is written out; full is written as standard plus what changes.
``course_utils.course.config`` merges and checks these values; a notebook gets them through ``course.setup``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping


def _with(base: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """``base`` with ``changes``: a profile written as its difference from another."""
    return {**base, **changes}


def _profiles(quick: dict[str, Any], standard: dict[str, Any], **full_changes: Any) -> dict[str, dict[str, Any]]:
    """A notebook's entry: quick as it is, full = standard with ``full_changes``."""
    return {"quick": quick, "standard": standard, "full": _with(standard, **full_changes)}


_STANDARD: dict[str, Any] = dict(
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

#: Settings shared by every notebook.
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
        "standard": MappingProxyType(_STANDARD),
        "full": MappingProxyType(_with(_STANDARD, eval_models=20, full_epochs=50, forgetting_epochs=20)),
    }
)
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)

# ---------------------------------------------------------------------------------------------------- notebook 08
#: Notebook 08 on one GPU. Every method's hyperparameters and what it makes once per dataset are the method's own
#: facts (its registry entry: ``methods.registry.MethodInfo.benchmark`` and ``prepare_settings``), not this file's.
_BENCHMARK_GPU: dict[str, Any] = dict(
    datasets=("mnist", "fashion_mnist"),
    methods=None,  # None: every registered method
    ipcs=(1, 10, 50),
    train_per_class=None,
    eval_protocol="dsa",  # ONE protocol for every row: DSA's (1000 epochs, DSA augmentation), as DSA, DM, MTT report
    eval_epochs=None,
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

#: Settings only one notebook uses, per profile, merged over ``PROFILES`` (``config.resolve(profile, notebook=...)``).
NOTEBOOK_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "00_introduction_and_baselines": {"quick": {}, "standard": {}, "full": {}},
    # The closed forms always run at full size (all training images); only KIP is shortened.
    # full: KIP as in the paper; CIFAR by parameter.
    "01_ridge_regression_closed_form": _profiles(
        quick=dict(
            feature_map="random_network",
            kip_steps=200,
            kip_batch_size=1000,
            kip_lr_img=0.01,
            figure_datasets=("mnist", "fashion_mnist"),
        ),
        standard=dict(
            feature_map="random_network",
            kip_steps=3000,
            kip_batch_size=5000,
            kip_lr_img=0.01,
            figure_datasets=("mnist", "fashion_mnist"),
        ),
        kip_steps=30000,
    ),
    # quick: several hundred outer steps with larger Adam rates (dd_lr_img chosen on validation: course.tuning),
    # LeNet, a reduced random-init run (2 images/class, T=6). standard (one GPU, not yet run): the paper's
    # random-init setting (100 images, T=30, batch 1024), fewer steps. full: the reference defaults: 400 epochs of 59
    # real batches of 1024, Adam 0.01, η0 0.02, halved every 40 epochs.
    "02_bilevel_distillation": _profiles(
        quick=dict(
            model="lenet",
            dd_fixed_steps=1200,
            dd_random_steps=600,
            dd_random_ipc=2,
            dd_random_distill_steps=2,
            dd_distill_epochs=3,
            dd_batch_size=256,
            dd_lr_img=0.03,
            dd_step_lr=0.02,
            dd_lr_init=0.1,
            dd_decay_every=400,
            dd_eval_models=20,
            validation_per_class=100,
            dd_checkpoint=False,
            cost_unroll_lengths=(1, 2, 4, 8, 16, 32),
            cost_batch_size=256,
        ),
        standard=dict(
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
            validation_per_class=500,
            dd_checkpoint=True,
            cost_unroll_lengths=(1, 2, 4, 8, 16, 32, 64, 128),
            cost_batch_size=1024,
        ),
        dd_fixed_steps=23600,
        dd_random_steps=23600,
        dd_lr_img=0.01,
        dd_step_lr=0.01,
        dd_lr_init=0.02,
        dd_decay_every=2360,
    ),
    # quick: 2 CPU cores. lr_img 3.0 (30x the papers', chosen on validation: course.tuning) compresses the papers'
    # 1000 outer iterations into 30;
    # 64 real images per class per matching step (the papers: 256); IPC 10 gets 2 iterations with a
    # 10-epoch inner loop (the schedule: 50); small cross-architecture and NAS budgets (the NAS reference
    # ranking trains each candidate on 100 real images per class for 20 epochs instead of the full data).
    # standard: one GPU, the papers' hyperparameters, 1000 iterations at IPC 1 and 100 at IPC 10/50.
    # full: the papers' settings (1000 iterations everywhere, every architecture distils).
    "03_gradient_matching": _profiles(
        quick=dict(
            ipcs=(1, 10),
            ipc1_iterations=30,
            large_ipc_iterations=2,
            large_ipc_inner_loop=10,
            batch_real=64,
            lr_img=3.0,
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
        standard=dict(
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
        large_ipc_iterations=1000,
        cross_distil_archs=("convnet", "mlp", "lenet", "alexnet", "vgg11", "resnet18"),
        cross_eval_models=10,
        nas_full_epochs=20,
    ),
    # quick: 2 CPU cores. 200 DM iterations (the paper: 20 000) with 64 real images per class (256) and lr_img 10
    # (the paper: 1; chosen on validation: course.tuning, where 0.3 to 30 score within a point); the DC run it
    # is compared with uses notebook 03's settings of the same profile; cost_ipcs are timed over cost_iterations.
    # standard: one GPU, the paper's hyperparameters, a quarter of its iterations. full: the paper's settings.
    "04_distribution_matching": _profiles(
        quick=dict(
            ipcs=(1, 10), dm_iterations=200, batch_real=64, lr_img=10.0, cost_ipcs=(1, 10, 50), cost_iterations=2
        ),
        standard=dict(
            ipcs=(1, 10, 50), dm_iterations=5000, batch_real=256, lr_img=1.0, cost_ipcs=(1, 10, 50), cost_iterations=5
        ),
        dm_iterations=20000,
        cost_iterations=10,
    ),
    # quick: 2 CPU cores. Experts: 2 ConvNet-32 trained 5 epochs on a 300-per-class subset (MTT then distils from
    # that subset: a buffer belongs to its data); MTT: 10 student steps, target 2 epochs ahead, 60 iterations
    # (IPC 10 costs ~1 s per iteration at width 32 on 2 cores).
    # standard: one GPU. 10 experts × 30 epochs on the whole training set, 1000 iterations of N = 20.
    # full: the reference code's defaults (buffer.py: 100 experts × 50 epochs; distill.py: 5000 iterations,
    # N = 20, M = 3, T+ = 25, lr_img 1000, lr_lr 1e-5); CIFAR's per-setting values are in papers.json.
    "05_trajectory_matching": _profiles(
        quick=dict(
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
        standard=dict(
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
        experts=100,
        expert_train_epochs=50,
        mtt_iterations=5000,
        expert_epochs=3,
        max_start_epoch=25,
    ),
    # quick: 2 CPU cores. IPC 1 on 300 images per class; a narrow pool (ConvNet width 32, LeNet, VGG11 width 8;
    # ResNet18 is left to the standard pool: at width 8 it reaches 21 % on 10 real images under this budget, and
    # as the worst family it stalls the max); 40 ZEN steps of J = 10; DC per architecture as notebook 03's quick
    # IPC 1 run. The C\T table trains each set 300 epochs on every architecture (50 leave LeNet untrained).
    # standard: one GPU. MNIST IPC 1 and 10 (the slides' setting), the full-width pool, 500 ZEN steps of J = 30
    # (the reference's), DC and DD per architecture, the C\T table with the paper protocol's epochs.
    # full: the reference's 1000 outer steps, 5 networks per cell of the table.
    "06_zen_cross_architecture": _profiles(
        quick=dict(
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
            validation_per_class=100,
        ),
        standard=dict(
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
            validation_per_class=500,
        ),
        zen_iterations=1000,
        table_models=5,
    ),
    # quick: 2 CPU cores. IPC 10 on 300 training images per class (the pool and the distillation use the same
    # images); a pool of 3 ConvNet-32 trained 2 epochs (the paper: 5); each sampler gets 6 outer iterations of 5
    # matching steps with 8 real-data network updates between them (the paper: 500 of 100); the images are scored
    # after every iteration (`snapshots`) by `curve_models` networks each (5 in quick and standard, 10 in full: on 2
    # cores a network costs ~3 s and there are 19 sets), the last snapshot being the record.
    # standard: one GPU. The whole training set, the paper's pool (5 networks, 2 epochs) and inner loop (100
    # matching steps per network), a fifth of its outer iterations.
    # full: the reference's settings (500 outer iterations of 100 matching steps; IDC's own runs use 2000).
    "07_model_augmentation": _profiles(
        quick=dict(
            ipc=10,
            train_per_class=300,
            pool_networks=3,
            pool_epochs=2,
            accdd_iterations=6,
            outer_loop=5,
            inner_loop=8,
            batch_real=64,
            lr_img=1.0,
            magnitude=(0.01, 0.09),
            directions=2,
            snapshots=(1, 2, 3, 4, 5, 6),
            curve_models=5,
        ),
        standard=dict(
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
            snapshots=(1, 10, 25, 50, 75, 100),
            curve_models=5,
        ),
        accdd_iterations=500,
        snapshots=(1, 50, 100, 200, 300, 500),
        curve_models=10,
    ),
    # quick: 2 CPU cores, the whole notebook in about 4 minutes. MNIST, 100 training images per class, IPC 1 and 10,
    # every method with a budget of seconds (the papers': hours); the profile's plain protocol (50 epochs, no
    # augmentation) for every row.
    # standard: one GPU; MNIST and Fashion-MNIST at IPC 1, 10, 50 on the whole training set, the papers'
    # hyperparameters (methods.md) with shortened iteration counts, every row scored by DSA's protocol.
    # full: the papers' iteration counts, 10 networks per set.
    "08_benchmark_and_applications": _profiles(
        quick=dict(
            datasets=None,  # None: the notebook's dataset only
            methods=None,  # None: every registered method
            ipcs=(1, 10),
            train_per_class=100,
            test_per_class=100,  # 1 000 test images: the table has 24 cells
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
            folder_per_class=100,  # a test split of 200 images (20 %): enough to resolve the folder result
            folder_ipc=1,
            folder_steps=100,
        ),
        standard=_BENCHMARK_GPU,
        eval_models=10,
    ),
}

#: ``{notebook: {method: {Config field: parameter}}}``: the notebook parameters that set a method's hyperparameters,
#: each checked by the method's ``Config`` (an error names the parameter). A field given as a parameter name is the
#: same in every run of the method: ``cfg.hparams(method)`` holds it. A field given as a tuple of names is set run by
#: run (one parameter per run, e.g. the steps of two runs): each is checked, the notebook passes it itself.
METHOD_PARAMETERS: dict[str, dict[str, dict[str, str | tuple[str, ...]]]] = {
    "00_introduction_and_baselines": {
        "herding": {"pool_per_class": "coreset_pool_per_class"},
        "forgetting": {"epochs": "forgetting_epochs", "pool_per_class": "coreset_pool_per_class"},
    },
    "01_ridge_regression_closed_form": {
        "kip": {"steps": "kip_steps", "batch_size": "kip_batch_size", "lr_img": "kip_lr_img"},
    },
    "02_bilevel_distillation": {
        "dd": {
            "steps": ("dd_fixed_steps", "dd_random_steps"),
            "distill_steps": ("dd_random_distill_steps",),  # the random-init run's
            "distill_epochs": "dd_distill_epochs",
            "batch_size": "dd_batch_size",
            "lr_img": "dd_lr_img",
            "step_lr": "dd_step_lr",
            "lr_init": "dd_lr_init",
            "decay_every": "dd_decay_every",
        },
    },
    "03_gradient_matching": {
        "dc": {
            "steps": ("ipc1_iterations", "large_ipc_iterations"),
            "inner_loop": ("large_ipc_inner_loop",),  # the runs at IPC > 1
            "batch_real": "batch_real",
            "lr_img": "lr_img",
        },
    },
    "04_distribution_matching": {
        "dm": {"steps": ("dm_iterations",), "batch_real": "batch_real", "lr_img": "lr_img"},
    },
    "05_trajectory_matching": {
        "mtt": {
            "steps": ("mtt_iterations",),
            "syn_steps": "syn_steps",
            "expert_epochs": "expert_epochs",
            "max_start_epoch": "max_start_epoch",
            "lr_img": "lr_img",
            "lr_lr": "lr_lr",
            "lr_teacher": "lr_teacher",
        },
    },
    "06_zen_cross_architecture": {
        "zen": {
            "steps": ("zen_iterations",),
            "inner_steps": "inner_steps",
            "lr_net": "lr_net",
            "lr_img": "lr_img",
            "neumann_terms": "neumann_terms",
        },
        "dc": {"steps": ("dc_iterations",)},
        "dd": {"steps": ("dd_iterations",)},
    },
    "07_model_augmentation": {
        "accdd": {
            "steps": ("accdd_iterations",),
            "outer_loop": "outer_loop",
            "inner_loop": "inner_loop",
            "batch_real": "batch_real",
            "lr_img": "lr_img",
            "pool_networks": "pool_networks",
            "pool_epochs": "pool_epochs",
            "magnitude": "magnitude",
            "directions": "directions",
        },
    },
    "08_benchmark_and_applications": {
        "dm": {"steps": "folder_steps"},  # the image folder's DM run
    },
}

#: ``{notebook: how it draws its training and test sets}`` (``course.setup``'s ``load_data``): ``train_per_class``
#: names the parameter of a class-balanced training subset, drawn from the run generator
#: ``(seed, stream, dataset, "subset")``; ``zca`` the parameter that whitens the data first (None: CIFAR only);
#: ``test_subset`` whether accuracy is measured on ``test_per_class`` test images per class (else the whole test set).
DATA: dict[str, dict[str, Any]] = {
    "00_introduction_and_baselines": {"test_subset": True},
    "01_ridge_regression_closed_form": {"test_subset": False},  # the closed forms predict the whole test set
    "02_bilevel_distillation": {"test_subset": True},
    "03_gradient_matching": {"test_subset": True},
    "04_distribution_matching": {"test_subset": True},
    "05_trajectory_matching": {
        "test_subset": True,
        "zca": "zca",
        "train_per_class": "expert_per_class",  # the experts and the distillation see the same images
        "stream": "mtt",
    },
    "06_zen_cross_architecture": {"test_subset": True, "train_per_class": "train_per_class", "stream": "zen"},
    "07_model_augmentation": {"test_subset": True, "train_per_class": "train_per_class", "stream": "accdd"},
    "08_benchmark_and_applications": {"test_subset": True, "train_per_class": "train_per_class", "stream": "benchmark"},
}

#: Parameters a notebook's parameters cell declares that are no setting: the notebook reads them itself.
OWN_PARAMETERS: dict[str, tuple[str, ...]] = {
    "08_benchmark_and_applications": ("use_recorded",),  # read a table cell from the committed records
}
