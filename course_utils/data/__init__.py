"""Data: the course's datasets under one data root (``datasets``, re-exported here: ``data.load``, ``ImageSet``,
...), your own image folders (``folders``), ZCA whitening (``zca``) and augmentation (``augment``).

``python -m course_utils data --copy-from DIR`` (or ``python -m course_utils.data --copy-from DIR``) copies the
original MNIST / Fashion-MNIST archives into the data root after checking their md5.
"""

from .datasets import *  # noqa: F403 (the datasets API is the data package's own)
from .datasets import __all__  # noqa: F401
