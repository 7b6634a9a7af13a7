"""course_utils: the small, tested package behind the dataset-distillation course notebooks.

Every notebook imports from here instead of re-defining code:

- ``data``      datasets under one data root, normalised tensors in memory, class-balanced sampling
- ``models``    ConvNet family, LeNet, AlexNet, VGG11, ResNet18, MLP behind one factory
- ``augment``   differentiable siamese augmentation (DSA), driven by an explicit generator
- ``training``  THE evaluation protocol: train a fresh net on a (synthetic) set, test it, repeat over seeds
- ``repro``     seeding and deterministic flags in one call
- ``config``    profiles (quick / standard / full) and parameter validation
- ``results``   one JSON record per run, written atomically
- ``synthetic`` the ``SyntheticSet`` every method returns (saves/loads as one file)
- ``methods``   one module per method (coresets, distillation methods) with one interface
- ``viz``       image grids and curves
"""

__version__ = "0.1.0"
