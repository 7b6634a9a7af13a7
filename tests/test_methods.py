"""Coreset baselines behind the common method interface."""

import pytest
import torch

from course_utils import methods
from course_utils.methods import forgetting, herding
from course_utils.methods.selection import top_per_class
from course_utils.nets import samplers


@pytest.mark.parametrize("name", ["random", "herding", "forgetting"])
def test_class_balance_and_reproducibility(name, blob_set):
    train = blob_set(12)
    kwargs = {"forgetting": {"epochs": 2, "model": samplers.FreshInit("convnet", width=8)}}.get(name, {})
    run = lambda seed: methods.distill(name, train, 3, generator=torch.Generator().manual_seed(seed), **kwargs)
    a, b = run(0), run(0)
    assert torch.bincount(a.labels, minlength=10).tolist() == [3] * 10
    idx = torch.tensor(a.meta["indices"])
    assert len(set(idx.tolist())) == 30 and torch.equal(train.labels[idx], a.labels)
    assert torch.equal(a.images, train.images[idx])
    assert a.meta["indices"] == b.meta["indices"] and torch.equal(a.images, b.images)
    assert a.meta["method"] == name and a.ipc == 3


def test_errors_name_the_bad_value(blob_set):
    train = blob_set(4)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="unknown method 'dcc'.*random, herding, forgetting"):
        methods.get_method("dcc")
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="ipc"):
            methods.distill("random", train, bad, generator=g)
    with pytest.raises(ValueError, match="ipc=5 is larger"):
        methods.distill("random", train, 5, generator=g)
    with pytest.raises(TypeError, match="random: unknown hyperparameter.*'lr'"):
        methods.distill("random", train, 1, generator=g, lr=0.1)
    with pytest.raises(TypeError, match="random uses no network"):
        methods.distill("random", train, 1, generator=g, model="convnet")


def _herd_by_hand(features, ipc):
    """Textbook herding for one class, one candidate at a time."""
    mu, chosen, total = features.mean(0), [], torch.zeros(features.shape[1], dtype=features.dtype)
    for k in range(1, ipc + 1):
        best, best_d = None, float("inf")
        for i in range(len(features)):
            if i in chosen:
                continue
            d = float(((mu - (total + features[i]) / k) ** 2).sum())
            if d < best_d:
                best, best_d = i, d
        chosen.append(best)
        total += features[best]
    return chosen


def test_vectorised_herding_matches_the_definition():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 9 + [1] * 6 + [2] * 11)[torch.randperm(26, generator=g)]
    feats = torch.randn(26, 5, generator=g, dtype=torch.float64)
    picks = herding.herd(feats, labels, 4, 3).view(3, 4)
    for c in range(3):
        members = torch.nonzero(labels == c).flatten()
        expected = members[_herd_by_hand(feats[members], 4)]
        assert picks[c].tolist() == expected.tolist()


def test_forgetting_tracker_counts_events_and_never_learned():
    tracker = forgetting.ForgettingTracker(3)
    onehot = lambda preds: torch.nn.functional.one_hot(torch.tensor(preds), 2).float()
    targets = torch.tensor([0, 0, 0])
    for preds in ([0, 0, 1], [1, 0, 1], [0, 0, 1], [1, 1, 1]):
        tracker(torch.arange(3), onehot(preds), targets)
    # example 0: right, wrong, right, wrong -> 2 events; example 1: right x3 then wrong -> 1; example 2 never right
    assert tracker.events.tolist() == [2, 1, 0]
    assert tracker.scores().tolist() == [2.0, 1.0, float("inf")]


def test_top_per_class_picks_highest_scores_per_class():
    scores = torch.tensor([5.0, 1.0, 3.0, 9.0, 2.0, 7.0])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    picks = top_per_class(scores, labels, 2, 2, torch.Generator().manual_seed(0))
    assert sorted(picks.tolist()) == [0, 2, 3, 5]


def test_forgetting_statistics_are_reused(blob_set):
    train = blob_set(8)
    g = torch.Generator().manual_seed(0)
    stats = forgetting.compute_statistics(train, generator=g, epochs=2, model=samplers.FreshInit("convnet", width=8))
    one = methods.distill("forgetting", train, 1, generator=g, statistics=stats)
    three = methods.distill("forgetting", train, 3, generator=g, statistics=stats)
    assert len(one) == 10 and len(three) == 30 and len(stats.pool) == 80


def test_herding_uses_model_features(blob_set):
    train = blob_set(6)

    net = samplers.build_network("convnet", train.info, 0, width=8)
    syn = methods.distill("herding", train, 2, generator=torch.Generator().manual_seed(0), model=net, pool_per_class=4)
    assert syn.meta["hparams"] == {"pool_per_class": 4} and syn.meta["features"] == "network"
    assert syn.meta["model"]["sampler"] == "fixed"  # a trained module is used as it is
    pixels = methods.distill("herding", train, 2, generator=torch.Generator().manual_seed(0), pool_per_class=4)
    assert pixels.meta["features"] == "pixels" and pixels.meta["model"] is None


def test_forgetting_ranks_never_learned_examples_first_or_last():
    scores = torch.tensor([2.0, float("inf"), 0.0, 1.0, float("inf"), 0.0])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    g = lambda: torch.Generator().manual_seed(0)
    first = top_per_class(forgetting.ranking_scores(scores, "first"), labels, 1, 2, g())
    last = top_per_class(forgetting.ranking_scores(scores, "last"), labels, 1, 2, g())
    assert sorted(first.tolist()) == [1, 4]  # never learned = forgotten infinitely often (Toneva et al.)
    assert sorted(last.tolist()) == [0, 3]  # the most forgotten among the learned ones
    with pytest.raises(ValueError, match="never_learned='never' is not valid; valid: first, last"):
        forgetting.ranking_scores(scores, "never")


def test_forgetting_never_learned_rule_is_a_hyperparameter(blob_set):
    train = blob_set(4)  # 4 images per class, labels [0]*4 + [1]*4 + ...
    scores = torch.tensor([float("inf"), 3.0, 0.0, 0.0] * 10)  # per class: one never learned, one forgotten 3 times
    stats = forgetting.ForgettingStatistics(torch.arange(40), scores, 2, {"sampler": "hand-made"}, 10)
    run = lambda rule: methods.distill(
        "forgetting", train, 1, generator=torch.Generator().manual_seed(0), statistics=stats, never_learned=rule
    )
    assert run("first").meta["indices"] == list(range(0, 40, 4))
    assert run("last").meta["indices"] == list(range(1, 40, 4))
    assert run("last").meta["hparams"]["never_learned"] == "last"
