"""Evaluation metrics of a fraud model on a test window."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

logger = logging.getLogger(__name__)


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve (step-wise, as scikit-learn computes it)."""
    return float(average_precision_score(labels, scores))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve."""
    return float(roc_auc_score(labels, scores))


def card_precision_at_k(frame: pd.DataFrame, scores: np.ndarray, k: int = 100) -> float:
    """Share of truly defrauded cards among the k highest-risk cards of each day, averaged.

    An investigator checks k cards a day: a card's risk is its highest score that day and
    it counts as defrauded if any of its transactions that day is a fraud. Days with
    fewer than k cards are scored over the cards they have.

    Args:
        frame: ``card_id``, ``event_day`` and ``is_fraud`` of each transaction.
        scores: The model's score of each transaction.
        k: Cards checked per day.
    """
    cards = (
        frame[["event_day", "card_id", "is_fraud"]]
        .assign(score=np.asarray(scores, dtype=float))
        .groupby(["event_day", "card_id"], sort=False)
        .agg(score=("score", "max"), fraud=("is_fraud", "max"))
        .reset_index()
    )
    per_day = [
        day.nlargest(k, "score")["fraud"].astype(float).mean()
        for _, day in cards.groupby("event_day", sort=True)
    ]
    return float(np.mean(per_day)) if per_day else float("nan")


def precision_recall_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Precision and recall of flagging every score >= threshold."""
    labels = np.asarray(labels, dtype=bool)
    flagged = np.asarray(scores) >= threshold
    hits = int((flagged & labels).sum())
    return {
        "precision": hits / flagged.sum() if flagged.any() else 0.0,
        "recall": hits / labels.sum() if labels.any() else 0.0,
        "flagged_share": float(flagged.mean()) if len(flagged) else 0.0,
    }


def threshold_for_precision(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The lowest score threshold whose precision reaches ``target``.

    When no threshold reaches it, the highest score is returned (flag almost nothing) and
    a warning says so.
    """
    precision, _, thresholds = precision_recall_curve(labels, scores)
    reached = np.flatnonzero(precision[:-1] >= target)
    if reached.size == 0:
        logger.warning(
            "No threshold reaches precision %.2f on the validation window; flagging only "
            "the top score. Lower training.thresholds in parameters_training.yml",
            target,
        )
        return float(np.max(scores))
    return float(thresholds[reached[0]])
