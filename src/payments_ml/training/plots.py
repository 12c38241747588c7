"""Evaluation plots of the test window, for MLflow and data/08_reporting/."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: figures are written to files, never shown

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

from payments_ml.training.metrics import average_precision  # noqa: E402

# Colours of the decision thresholds drawn on the score histogram.
_THRESHOLD_STYLES = {"review": "tab:orange", "decline": "tab:red"}


def pr_curves(labels: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    """Precision-recall curve of each model on the same transactions, its average
    precision (the area the curve encloses) in the legend."""
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for name, values in scores.items():
        precision, recall, _ = precision_recall_curve(labels, values)
        label = f"{name} (AP {average_precision(labels, values):.3f})"
        axis.plot(recall, precision, label=label)
    axis.axhline(float(np.mean(labels)), color="grey", linestyle=":", label="fraud rate")
    axis.set(xlabel="recall", ylabel="precision", title="Precision-recall, test window")
    axis.legend()
    figure.tight_layout()
    return figure


def feature_importance(features: list[str], gains: np.ndarray, top: int = 20) -> Figure:
    """Total gain of each feature's splits, largest first; the title says when only the
    ``top`` of more features are shown."""
    if len(features) != len(gains):
        raise ValueError(
            f"feature_importance got {len(features)} feature names but {len(gains)} gains; "
            "pass the model's feature list with its booster's importances"
        )
    order = np.argsort(gains)[::-1][:top][::-1]
    shown = f"top {len(order)} of" if len(order) < len(features) else "all"
    figure, axis = plt.subplots(figsize=(6, 0.3 * len(order) + 1.3))
    axis.barh([features[i] for i in order], gains[order])
    axis.set(
        xlabel="total gain",
        title=f"Feature importance (gain)\n{shown} {len(features)} features",
    )
    figure.tight_layout()
    return figure


def calibration(labels: np.ndarray, scores: np.ndarray, min_count: int = 30) -> Figure:
    """Observed fraud rate against mean predicted probability, in log-spaced score bins.

    Frauds are rare, so bins are spaced on a log scale (1e-4 to 1); bins with fewer than
    ``min_count`` transactions or no fraud are left out (a log axis has no zero).
    """
    edges = np.concatenate([[0.0], np.logspace(-4, 0, 17)])
    index = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, len(edges) - 2)
    count = np.bincount(index, minlength=len(edges) - 1)
    frauds = np.bincount(index, labels.astype(float), minlength=len(edges) - 1)
    predicted = np.bincount(index, scores, minlength=len(edges) - 1) / np.maximum(count, 1)
    keep = (count >= min_count) & (frauds > 0)
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([1e-4, 1], [1e-4, 1], color="grey", linestyle=":", label="perfect")
    axis.plot(predicted[keep], frauds[keep] / count[keep], marker="o", label="model")
    axis.set(
        xscale="log",
        yscale="log",
        xlim=(1e-4, 1),
        ylim=(1e-4, 1),
        xlabel="mean predicted probability",
        ylabel="observed fraud rate",
        title="Calibration (log-spaced score bins)",
    )
    axis.legend()
    figure.tight_layout()
    return figure


def score_distribution(
    labels: np.ndarray, scores: np.ndarray, thresholds: dict[str, float] | None = None
) -> Figure:
    """Histogram of scores, genuine and fraud apart, with the model's decision thresholds
    (``{"review": 0.2, "decline": 0.7}``, as serving applies them) as vertical lines."""
    figure, axis = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 51)
    labels = labels.astype(bool)
    axis.hist(scores[~labels], bins=bins, alpha=0.6, label="genuine", density=True)
    axis.hist(scores[labels], bins=bins, alpha=0.6, label="fraud", density=True)
    for name, value in sorted((thresholds or {}).items(), key=lambda item: item[1]):
        color = _THRESHOLD_STYLES.get(name, "black")
        axis.axvline(value, color=color, linestyle="--", label=f"{name} \u2265 {value:.3f}")
    axis.set(yscale="log", xlabel="fraud probability", ylabel="density", title="Scores")
    axis.legend()
    figure.tight_layout()
    return figure
