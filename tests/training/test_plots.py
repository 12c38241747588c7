"""Evaluation plots: AP in the PR legend, decision thresholds on the score histogram,
and a feature-importance title that says how many features it leaves out."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from payments_ml.training import plots


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (5 % fraud), a model's scores that rank frauds higher, and noise."""
    rng = np.random.default_rng(3)
    labels = rng.random(4000) < 0.05
    model = np.clip(0.15 + 0.5 * labels + rng.normal(0, 0.15, labels.size), 0, 1)
    return labels, model, rng.random(labels.size)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _vertical_lines(axis) -> dict[str, float]:
    """Legend label -> x of every vertical line (axvline) of the axis."""
    found = {}
    for line in axis.get_lines():
        x = np.asarray(line.get_xdata(), dtype=float)
        if x.size == 2 and x[0] == x[1]:
            found[line.get_label()] = float(x[0])
    return found


def test_pr_legend_gives_each_models_average_precision(scored):
    labels, model, noise = scored
    figure = plots.pr_curves(labels, {"lightgbm": model, "baseline": noise})
    texts = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert texts == [
        f"lightgbm (AP {average_precision_score(labels, model):.3f})",
        f"baseline (AP {average_precision_score(labels, noise):.3f})",
        "fraud rate",
    ]
    assert average_precision_score(labels, model) > 0.5 > average_precision_score(labels, noise)


def test_score_histogram_draws_the_decision_thresholds(scored):
    labels, model, _ = scored
    thresholds = {"decline": 0.81, "review": 0.234}
    axis = plots.score_distribution(labels, model, thresholds).axes[0]
    assert _vertical_lines(axis) == {"review \u2265 0.234": 0.234, "decline \u2265 0.810": 0.81}
    texts = [text.get_text() for text in axis.get_legend().get_texts()]
    assert texts == ["genuine", "fraud", "review \u2265 0.234", "decline \u2265 0.810"]


def test_score_histogram_without_thresholds_has_no_lines(scored):
    labels, model, _ = scored
    axis = plots.score_distribution(labels, model).axes[0]
    assert _vertical_lines(axis) == {}


def test_feature_importance_says_when_it_shows_the_top_few():
    features = [f"f{i}" for i in range(30)]
    gains = np.arange(30, dtype=float)[::-1] * 10.0  # f0 largest
    axis = plots.feature_importance(features, gains, top=20).axes[0]
    assert axis.get_title() == "Feature importance (gain)\ntop 20 of 30 features"
    shown = [label.get_text() for label in axis.get_yticklabels()]
    assert shown == [f"f{i}" for i in range(19, -1, -1)]  # largest at the top


def test_feature_importance_of_few_features_shows_all():
    axis = plots.feature_importance(["a", "b", "c"], np.array([1.0, 3.0, 2.0])).axes[0]
    assert axis.get_title() == "Feature importance (gain)\nall 3 features"
    assert [label.get_text() for label in axis.get_yticklabels()] == ["a", "c", "b"]


def test_feature_importance_refuses_names_and_gains_that_differ():
    with pytest.raises(ValueError, match="got 2 feature names but 3 gains"):
        plots.feature_importance(["a", "b"], np.array([1.0, 2.0, 3.0]))
