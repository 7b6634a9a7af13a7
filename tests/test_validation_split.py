"""The validation split (``data.splits``) and choices made on it (``evaluation.choice``): disjoint, per class,
reproducible, and the test split never reaches a choice."""

from __future__ import annotations

import pytest
import torch

from course_utils.data import splits
from course_utils.data.datasets import ImageSet
from course_utils.evaluation import choice


def _set(counts: list[int], role: str | None = "train") -> ImageSet:
    labels = torch.cat([torch.full((k,), c) for c, k in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    images = torch.arange(len(labels), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 28, 28).contiguous()
    return ImageSet(images, labels, "mnist", role=role)


def _ids(s: ImageSet) -> list[int]:
    return s.images[:, 0, 0, 0].long().tolist()  # every image carries its index in the full set


def test_carve_validation_is_disjoint_balanced_and_covers_the_training_set():
    train = _set([12, 9, 15, 10, 11, 13, 9, 10, 14, 12])
    rest, val = splits.carve_validation(train, 3, seed=0)
    assert val.role == "validation" and rest.role == "train"
    assert val.class_counts.tolist() == [3] * 10
    assert (rest.class_counts + val.class_counts).tolist() == train.class_counts.tolist()
    assert set(_ids(rest)).isdisjoint(_ids(val))
    assert sorted(_ids(rest) + _ids(val)) == list(range(len(train)))
    assert _ids(rest) == sorted(_ids(rest))  # the rest keeps the training set's order
    assert val.labels.tolist() == sorted(val.labels.tolist())  # class 0 first
    assert torch.equal(val.labels, train.labels[torch.tensor(_ids(val))])


def test_carve_validation_depends_on_the_seed_only():
    train = _set([20] * 10)
    a = splits.carve_validation(train, 4, seed=3)[1]
    b = splits.carve_validation(train, 4, seed=3)[1]
    assert _ids(a) == _ids(b)
    draws = {tuple(_ids(splits.carve_validation(train, 4, seed=s)[1])) for s in range(5)}
    assert len(draws) == 5


def test_carve_validation_refuses_the_test_split_and_impossible_sizes():
    with pytest.raises(ValueError, match="role='test'.*valid: a set with role 'train'"):
        splits.carve_validation(_set([10] * 10, role="test"), 2, seed=0)
    with pytest.raises(ValueError, match=r"per_class=9 leaves no training image.*class 1 has 9.*1 <= per_class < 9"):
        splits.carve_validation(_set([10, 9] + [10] * 8), 9, seed=0)
    with pytest.raises(ValueError, match="per_class"):
        splits.carve_validation(_set([10] * 10), 0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        splits.carve_validation(_set([10] * 10), 2, seed=-1)


def test_roles_travel_with_subsets_copies_and_loading(tmp_path):
    s = _set([5] * 10, role="test")
    assert s.subset([0, 1]).role == "test" and s.to("cpu").role == "test"
    assert s.balanced_subset(2, torch.Generator().manual_seed(0)).role == "test"
    assert "role='test'" in repr(s)
    with pytest.raises(ValueError, match="role='dev' is not valid; valid: 'train', 'validation', 'test', None"):
        _set([5] * 10, role="dev")


def test_loaded_splits_carry_their_roles(mnist_root):
    from course_utils.data import datasets

    train, test = datasets.load("mnist", root=mnist_root, download=False)
    assert (train.role, test.role) == ("train", "test")


def test_choose_picks_the_best_on_validation_and_never_sees_the_test_split():
    train = _set([12] * 10)
    rest, val = splits.carve_validation(train, 2, seed=0)
    seen = []

    def score(option, data):
        seen.append(data.role)
        return {"a": 1.0, "b": 3.0, "c": 3.0}[option]

    picked = choice.choose(["a", "b", "c"], score, val, what="the learning rate")
    assert picked.best == "b" and picked.scores == {"a": 1.0, "b": 3.0, "c": 3.0}  # a tie goes to the first
    assert picked.measured_on == "validation" and seen == ["validation"] * 3
    assert choice.choose(["a", "b"], score, val, higher_is_better=False).best == "a"
    test = _set([5] * 10, role="test")
    with pytest.raises(ValueError, match="the learning rate would be chosen on the test split"):
        choice.choose(["a", "b"], score, test, what="the learning rate")
    assert seen == ["validation"] * 5  # refused before any option was scored
    with pytest.raises(ValueError, match="finite number"):
        choice.choose(["a"], lambda o, d: float("nan"), val)
    with pytest.raises(ValueError, match="no options"):
        choice.choose([], score, val)
