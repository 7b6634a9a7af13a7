"""Rank correlations for the NAS proxy, against hand computations."""

import math

import pytest
import torch

from course_utils.evaluation import ranking


def test_rankdata_averages_ties():
    assert ranking.rankdata([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    assert ranking.rankdata([3, 1, 2]) == [3, 1, 2]
    assert ranking.rankdata([5, 5, 5]) == [2, 2, 2]


def test_spearman_without_ties_matches_the_d_squared_formula():
    x, y = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, 5.0]
    d2 = sum((a - b) ** 2 for a, b in zip(ranking.rankdata(x), ranking.rankdata(y)))  # = 4
    assert ranking.spearman(x, y) == pytest.approx(1 - 6 * d2 / (5 * (25 - 1)))  # 0.8
    assert ranking.spearman(x, y) == pytest.approx(0.8)
    assert ranking.spearman(x, x) == pytest.approx(1.0)
    assert ranking.spearman(x, x[::-1]) == pytest.approx(-1.0)
    # a monotone transformation does not change ranks: the DC course report's depth 1/2/4 accuracies
    assert ranking.spearman([83.8, 91.3, 94.7], [98.1, 98.8, 99.3]) == pytest.approx(1.0)


def test_spearman_with_ties_by_hand():
    # ranks x: [1, 2.5, 2.5, 4], y: [1, 2, 3, 4]; Pearson of the ranks
    x, y = [1, 2, 2, 3], [10, 20, 30, 40]
    rx, ry = [1, 2.5, 2.5, 4], [1, 2, 3, 4]
    mx, my = 2.5, 2.5
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))  # 2.25 + 0 + 0 + 2.25 = 4.5
    var = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)  # 4.5, 5
    assert ranking.spearman(x, y) == pytest.approx(cov / math.sqrt(var[0] * var[1]))
    assert ranking.spearman(x, y) == pytest.approx(4.5 / math.sqrt(22.5))


def test_kendall_tau_b_by_hand():
    assert ranking.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)  # P=2, Q=1
    # ties: x=[1,1,2], y=[1,2,3]: pairs (0,1) tied in x only, (0,2),(1,2) concordant -> 2/sqrt(2*3)
    assert ranking.kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))


def test_same_winner_and_ranking():
    assert ranking.same_winner([83.8, 91.3, 94.7], [98.1, 98.8, 99.3])
    assert not ranking.same_winner([3, 2, 1], [1, 2, 3])
    assert ranking.same_winner([2, 2, 1], [1, 2, 0])  # shared tie for first counts
    assert ranking.ranking(["d1", "d2", "d4"], [83.8, 91.3, 94.7]) == ["d4", "d2", "d1"]
    assert ranking.spearman(torch.tensor([1.0, 2.0, 3.0]), (1, 2, 3)) == pytest.approx(1.0)


def test_errors():
    with pytest.raises(ValueError, match="same candidates, got 2 and 3"):
        ranking.spearman([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        ranking.spearman([1], [1])
    with pytest.raises(ValueError, match="same value"):
        ranking.spearman([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        ranking.spearman([1, float("nan")], [1, 2])
    with pytest.raises(ValueError, match="sequence of numbers"):
        ranking.rankdata(["a", "b"])
