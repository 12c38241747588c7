"""What the review loop is worth, measured on generated days (docs/design.md, "Review
loop"): ``python -m tests.serving.review_experiment [--customers N] [--days N]``.

A simulated analyst checks, each day, the ``--budget`` cards (100) with the highest
fraud probability among those the model sent to review, each ``--delay-min`` minutes
(30) after the card's first flag, and answers with the ground truth.

- **Blocking.** On the test days, a card confirmed fraud is blocked from its verdict
  on: the frauds it prevents are the card's fraud transactions after the verdict that
  the model alone did not decline; the cost is the card's genuine transactions declined
  (none of a genuine card: the analyst answers the truth).
- **Labels.** Three trainings at the same cutoff (the first test day), evaluated by
  average precision on the test days: the project's split (the ``delay_days`` gap left
  out: its labels are not known yet), the gap included with the chargebacks known by the
  cutoff, and the gap included with the analyst's verdicts as well (each counting from
  its ``reported_at``, by the feed's rule, `payments_ml.labels.feed.resolve`).

Features come from `payments_ml.features.windows` (the serving features, by construction).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import sys
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from payments_ml.config import load_parameters
from payments_ml.contracts import split_by_contract
from payments_ml.data_gen import generator as g
from payments_ml.features import windows as fw
from payments_ml.features.definitions import FEATURES
from payments_ml.labels import feed
from payments_ml.pipelines.training.nodes import split_transactions
from payments_ml.training.metrics import average_precision, threshold_for_precision
from tests.conftest import PROJECT_ROOT

LGB = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 40}
LGB |= {"feature_fraction": 0.8, "verbosity": -1, "seed": 7, "num_threads": 2}


def generate(customers: int, days: int, seed: int) -> pd.DataFrame:
    """Feature rows (as of each transaction) of a generated world, with the labels."""
    params = copy.deepcopy(load_parameters(PROJECT_ROOT)["data_gen"])
    params |= {"n_customers": customers, "n_merchants": max(100, customers // 10), "seed": seed}
    valid, _ = split_by_contract(g.generate_days(g.world_of(params), dt.date(2025, 5, 1), days))
    return fw.feature_rows(valid, fw.merchant_daily(valid, 7), 7)


def train(rows: pd.DataFrame, labels: np.ndarray) -> lgb.Booster:
    data = lgb.Dataset(rows[FEATURES].to_numpy(float), labels.astype(float))
    return lgb.train(LGB, data, num_boost_round=200)


def analyst(rows: pd.DataFrame, scores: np.ndarray, review: float, budget: int, delay_min: float):
    """The verdicts of the simulated analyst: per day, the top ``budget`` cards among the
    transactions flagged (probability >= ``review``), each judged ``delay_min`` after its
    first flag, with the truth of each flagged transaction."""
    flagged = rows.assign(p=scores, day=fw.day_of(fw.to_ns(rows["event_timestamp"])))
    flagged = flagged[flagged["p"] >= review]
    cards = flagged.groupby(["day", "card_id"]).agg(
        p=("p", "max"), first=("event_timestamp", "min"), fraud=("is_fraud", "any")
    )
    top = cards.sort_values("p", ascending=False).groupby(level="day").head(budget).reset_index()
    top["verdict_at"] = top["first"] + pd.Timedelta(minutes=delay_min)
    judged = flagged.merge(top[["day", "card_id", "verdict_at"]], on=["day", "card_id"])
    reports = pd.DataFrame(
        {
            "transaction_id": judged["transaction_id"],
            "is_fraud": judged["is_fraud"],
            "reported_at": judged["verdict_at"],
            "source": "analyst",
        }
    )
    return top, reports


def blocking(test: pd.DataFrame, scores: np.ndarray, decline: float, top: pd.DataFrame) -> dict:
    """Frauds prevented by blocking the cards confirmed fraud, from their first verdict."""
    blocks = top[top["fraud"]].groupby("card_id")["verdict_at"].min()
    since = test["card_id"].map(blocks)
    after = since.notna() & (test["event_timestamp"] > since)
    model_declines = scores >= decline
    prevented = after & test["is_fraud"] & ~model_declines
    return {
        "cards_reviewed": len(top),
        "cards_confirmed_fraud": int(top["fraud"].sum()),
        "review_precision": round(float(top["fraud"].mean()), 4),
        "frauds_in_test_days": int(test["is_fraud"].sum()),
        "frauds_passed_by_model_alone": int((test["is_fraud"] & ~model_declines).sum()),
        "frauds_prevented_by_blocking": int(prevented.sum()),
        "fraud_amount_prevented": round(float(test.loc[prevented, "amount"].sum()), 2),
        "genuine_declined_by_blocking": int((after & ~test["is_fraud"] & ~model_declines).sum()),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = generate(args.customers, args.days, args.seed)
    params = {"train_days": 14, "valid_days": 4, "test_days": args.test_days, "delay_days": 7}
    train_rows, valid, test, split = split_transactions(rows, pd.DataFrame(), params)
    champion = train(pd.concat([train_rows, valid]), pd.concat([train_rows, valid])["label"])
    valid_scores = champion.predict(valid[FEATURES].to_numpy(float))
    review = threshold_for_precision(valid["label"].to_numpy(), valid_scores, 0.3)
    decline = threshold_for_precision(valid["label"].to_numpy(), valid_scores, 0.8)
    test = test.assign(
        amount=test["transaction_id"].map(rows.set_index("transaction_id")["amount"])
    )
    test_scores = champion.predict(test[FEATURES].to_numpy(float))
    top, _ = analyst(test, test_scores, review, args.budget, args.delay_min)
    figures = {"thresholds": {"review": review, "decline": decline}, "split": split}
    figures["blocking"] = blocking(test, test_scores, decline, top)
    figures["next_model_ap"] = next_models(rows, split, champion, review, args)
    return figures


def next_models(rows, split, champion, review, args) -> dict[str, float]:
    """AP on the test days of the three trainings at the cutoff (module docstring)."""
    cutoff = pd.Timestamp(split["test_window"][0], tz="UTC")
    first = pd.Timestamp(split["fit_window"][0], tz="UTC")
    test = rows[rows["event_timestamp"] >= cutoff]
    before = rows[(rows["event_timestamp"] >= first) & (rows["event_timestamp"] < cutoff)]
    gap = before[before["event_timestamp"] >= pd.Timestamp(split["gap_window"][0], tz="UTC")]
    _, reports = analyst(
        gap, champion.predict(gap[FEATURES].to_numpy(float)), review, args.budget, args.delay_min
    )
    reports = reports[reports["reported_at"] < cutoff]
    chargebacks = feed.chargebacks(rows, 0, 10**6)[feed.FEED_COLUMNS]
    truth = test["is_fraud"].to_numpy()
    found = rows[["transaction_id", "merchant_id", "event_timestamp"]]
    ap = {}
    for name, feed_rows, window in [
        ("project_split_gap_left_out", chargebacks, before[~before.index.isin(gap.index)]),
        ("gap_in_chargebacks_only", chargebacks, before),
        ("gap_in_with_analyst_labels", pd.concat([chargebacks, reports]), before),
    ]:
        labels, _ = feed.resolve(feed_rows, found)
        known = feed.relabel(window, labels)
        label = known["is_fraud"] & (known["label_available_at"] < cutoff)
        model = train(window, label.to_numpy())
        ap[name] = round(average_precision(truth, model.predict(test[FEATURES].to_numpy(float))), 4)
        ap[f"{name}_labelled_frauds"] = int(label.sum())
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--days", type=int, default=32)
    parser.add_argument("--test-days", type=int, default=7)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--delay-min", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=11)
    figures = run(parser.parse_args(argv))
    sys.stdout.write(json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
