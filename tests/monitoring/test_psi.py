"""PSI against a hand computation, and its bins."""

from __future__ import annotations

import math

import numpy as np
import pytest

from payments_ml.monitoring import psi


def test_psi_matches_the_hand_computation():
    expected = np.array([25, 25, 25, 25])
    actual = np.array([10, 20, 30, 40])
    by_hand = sum(
        (a - e) * math.log(a / e)
        for e, a in zip([0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4], strict=True)
    )
    # 0.15 ln 2.5 + 0.05 ln 1.25 + 0.05 ln 1.2 + 0.15 ln 1.6
    assert by_hand == pytest.approx(0.137444 + 0.011157 + 0.009116 + 0.070500, abs=1e-5)
    assert psi.psi(expected, actual) == pytest.approx(by_hand, rel=1e-12)
    assert psi.psi(expected, expected * 7) == 0.0


def test_an_empty_bin_is_floored_not_infinite():
    value = psi.psi(np.array([50, 50, 0]), np.array([50, 40, 10]))
    by_hand = (
        (0.5 - 0.5) * 0 + (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    )
    assert value == pytest.approx(by_hand, rel=1e-12)


def test_quantile_bins_hold_equal_shares_of_the_reference_and_nan_has_its_own():
    reference = np.arange(1000, dtype=float)
    edges = psi.quantile_edges(reference, 4)
    assert edges.tolist() == [249.0, 499.0, 749.0]  # values of the reference
    counts = psi.bin_counts(np.append(reference, [np.nan, np.nan]), edges)
    assert counts.tolist() == [249, 250, 250, 251, 2]  # left-closed bins, then NaN


def test_repeated_values_give_fewer_bins():
    flags = np.array([0.0] * 70 + [1.0] * 30)
    assert psi.quantile_edges(flags, 10).tolist() == [0.0, 1.0]
    assert psi.bin_counts(flags, np.array([0.0, 1.0])).tolist() == [0, 70, 30, 0]


def test_a_shift_is_caught_and_sampling_noise_is_not():
    rng = np.random.default_rng(3)
    reference = rng.normal(0, 1, 20_000)
    assert psi.psi_between(reference, rng.normal(0, 1, 5_000), 10) < 0.01
    assert psi.psi_between(reference, rng.normal(1, 1, 5_000), 10) > 0.25


def test_a_feature_turning_null_drifts():
    rng = np.random.default_rng(4)
    reference = rng.normal(0, 1, 10_000)
    current = rng.normal(0, 1, 10_000)
    current[:3_000] = np.nan
    assert psi.psi_between(reference, current, 10) > 0.25


def test_fine_histograms_regroup_into_reference_quantiles():
    reference = np.array([10, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    assert psi.coarsen(reference, 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    current = np.array([0, 0, 0, 0, 10, 10, 10, 10, 30, 40])
    by_hand = psi.psi(np.array([20, 20, 20, 20, 20]), np.array([0, 0, 20, 20, 70]))
    assert psi.psi_of_histograms(reference, current, 5) == pytest.approx(by_hand)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: psi.quantile_edges(np.arange(5.0), 1), "at least 2 bins, got n_bins=1"),
        (lambda: psi.psi(np.ones(3), np.ones(4)), "same bins, got"),
        (lambda: psi.psi(np.zeros(3), np.ones(3)), "both need values"),
    ],
)
def test_bad_input_says_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()
