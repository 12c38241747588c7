"""Per-day quality metrics from partials, late rows against the state, quality alerts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from payments_ml.config import load_parameters
from payments_ml.monitoring import alerts as al
from payments_ml.monitoring import quality as qu
from tests.conftest import PROJECT_ROOT
from tests.monitoring import synthetic as syn

AS_OF = dt.datetime(2025, 8, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def params() -> dict:
    return load_parameters(PROJECT_ROOT)["monitoring"]


def table(
    valid: pd.DataFrame,
    quarantine: pd.DataFrame,
    params: dict,
    as_of: dt.datetime = AS_OF,
    blocks: int = 1,
) -> pd.DataFrame:
    """The day table, with each source cut into ``blocks`` blocks as Ray would."""
    edges = qu.amount_edges(params["quality"]["amount_histogram"])
    partials = []
    for frame, quarantined in ((valid, False), (quarantine, True)):
        arrow = pa.Table.from_pandas(frame.drop(columns=syn.REASON, errors="ignore"))
        for piece in np.array_split(np.arange(arrow.num_rows), blocks):
            partials.append(
                qu.day_partials(
                    arrow.take(piece),
                    quarantined=quarantined,
                    edges=edges,
                    as_of_ns=pd.Timestamp(as_of).value,
                )
            )
    days = qu.combine_partials(partials, len(edges) + 1)
    return qu.daily_quality(days, edges, as_of, params["quality"]).set_index("event_date")


def test_a_clean_history_has_one_row_per_day_with_the_usual_values(params):
    daily = table(syn.transactions(n_days=21), syn.empty_quarantine(), params)
    assert list(daily.index) == [syn.day(i) for i in range(21)]
    assert (daily["rows_arrived"] == 400).all() and (daily["rows_quarantined"] == 0).all()
    assert (daily["fraud_rate"] == 8 / 400).all() and daily["complete"].all()
    assert (daily["duplicate_rate"] == 0).all()
    assert (
        (daily.filter(like="null_rate_").drop(columns="null_rate_fraud_scenario") == 0).all().all()
    )
    assert daily["null_rate_fraud_scenario"].eq(392 / 400).all()
    # Ratios need trailing days: a week for the same weekday, min_baseline_days for others.
    assert daily["row_count_ratio"].iloc[:7].isna().all()
    assert (daily["row_count_ratio"].iloc[7:] == 1.0).all()
    assert (daily["fraud_rate_ratio"].iloc[7:] == 1.0).all()
    assert daily["amount_psi"].iloc[7:].max() < 0.1


def test_nulls_and_duplicates_count_over_valid_and_quarantined_rows(params):
    valid, quarantine = syn.null_merchants(
        syn.transactions(n_days=10), syn.empty_quarantine(), 3, 0.3
    )
    valid, quarantine = syn.duplicate_burst(valid, quarantine, 5, 20)
    # An id of day 1 delivered again on day 8 in another batch: valid by the contract.
    again = valid[valid["event_date"] == syn.day(1)].head(2).assign(event_date=syn.day(8))
    valid = pd.concat([valid, again], ignore_index=True)
    daily = table(valid, quarantine, params, blocks=3)
    assert daily.loc[syn.day(3), "rows_arrived"] == 400
    assert daily.loc[syn.day(3), "null_rate_merchant_id"] == pytest.approx(0.3)
    assert daily.loc[syn.day(3), "quarantine_rate"] == pytest.approx(0.3)
    assert daily.loc[syn.day(3), "rows_valid"] == 280
    assert daily.loc[syn.day(5), "duplicate_rows"] == 20
    assert daily.loc[syn.day(5), "duplicate_rate"] == pytest.approx(20 / 420)
    assert daily.loc[syn.day(8), "duplicate_rows"] == 2  # the later arrival is the duplicate
    assert daily.loc[syn.day(1), "duplicate_rows"] == 0
    assert daily["duplicate_rows"].sum() == 22


def test_blocks_do_not_change_the_result(params):
    valid, quarantine = syn.duplicate_burst(
        syn.transactions(n_days=9), syn.empty_quarantine(), 4, 7
    )
    pd.testing.assert_frame_equal(
        table(valid, quarantine, params, blocks=1), table(valid, quarantine, params, blocks=5)
    )


def test_amount_quantiles_from_the_histogram_are_within_its_resolution(params):
    valid = syn.transactions(n_days=8, per_day=3000, seed=5)
    daily = table(valid, syn.empty_quarantine(), params)
    amounts = valid.groupby("event_date")["amount"]
    for column, q in qu.QUANTILES.items():
        exact = amounts.quantile(q)
        np.testing.assert_allclose(daily[column], exact, rtol=0.012)
    np.testing.assert_allclose(daily["amount_mean"], amounts.mean(), rtol=1e-12)
    np.testing.assert_array_equal(daily["amount_max"], amounts.max())
    np.testing.assert_array_equal(daily["amount_min"], amounts.min())


def test_a_day_without_rows_is_a_day_with_zero_volume(params):
    valid = syn.transactions(n_days=16)
    valid = valid[valid["event_date"] != syn.day(14)]
    daily = table(valid, syn.empty_quarantine(), params)
    assert daily.loc[syn.day(14), "rows_arrived"] == 0
    assert daily.loc[syn.day(14), "row_count_ratio"] == 0.0
    assert np.isnan(daily.loc[syn.day(14), "null_rate_amount"])


def test_volume_is_compared_with_the_same_weekday(params):
    valid = syn.transactions(n_days=15)
    sundays = [syn.day(i) for i in (6, 13)]  # day 0 is a Monday
    valid = valid[
        ~(valid["event_date"].isin(sundays) & (valid.groupby("event_date").cumcount() >= 200))
    ]
    daily = table(valid, syn.empty_quarantine(), params)
    assert daily.loc[syn.day(13), "row_count_ratio"] == 1.0  # as quiet as last Sunday
    assert daily.loc[syn.day(14), "row_count_ratio"] == 1.0


def test_days_in_progress_and_pending_labels_are_not_judged(params):
    valid = syn.transactions(n_days=12)
    as_of = pd.Timestamp(syn.day(11), tz="UTC").to_pydatetime() + dt.timedelta(hours=20)
    daily = table(valid, syn.empty_quarantine(), params, as_of=as_of)
    assert not daily.loc[syn.day(11), "complete"] and daily.loc[syn.day(10), "complete"]
    assert np.isnan(daily.loc[syn.day(11), "row_count_ratio"])
    # Labels come 2 days after the transaction: days 10 and 11 still wait for some.
    assert daily.loc[syn.day(10), "labels_pending"] > 0
    assert np.isnan(daily.loc[syn.day(10), "fraud_rate_ratio"])
    assert daily.loc[syn.day(8), "fraud_rate_ratio"] == 1.0


def test_late_rows_are_counted_against_what_earlier_runs_saw(params):
    valid = syn.transactions(n_days=10)
    first, state = qu.apply_late_rows(
        table(valid, syn.empty_quarantine(), params).reset_index(), {}, AS_OF
    )
    assert (first["late_rows"] == 0).all() and len(state["days"]) == 10
    assert state["days"][syn.day(2)] == {
        "rows": 400,
        "last_rows": 400,
        "checked_at": "2025-08-01T00:00:00Z",
    }
    later = syn.late_rows(valid, 2, 10)
    second, state = qu.apply_late_rows(
        table(later, syn.empty_quarantine(), params).reset_index(), state, AS_OF
    )
    row = second.set_index("event_date").loc[syn.day(2)]
    assert (row["late_rows"], row["late_rows_new"]) == (10, 10)
    assert row["late_rate"] == pytest.approx(10 / 410)
    third, state = qu.apply_late_rows(
        table(later, syn.empty_quarantine(), params).reset_index(), state, AS_OF
    )
    row = third.set_index("event_date").loc[syn.day(2)]
    assert (row["late_rows"], row["late_rows_new"]) == (10, 0)
    assert third["late_rows"].sum() == 10
    # A rewritten day (fewer rows than first seen) starts over.
    fewer = syn.thin_day(later, 2, 0.5)
    fourth, state = qu.apply_late_rows(
        table(fewer, syn.empty_quarantine(), params).reset_index(), state, AS_OF
    )
    assert fourth.set_index("event_date").loc[syn.day(2), "late_rows"] == 0
    assert state["days"][syn.day(2)]["rows"] == 205


def test_a_day_in_progress_is_not_remembered(params):
    valid = syn.transactions(n_days=3)
    as_of = pd.Timestamp(syn.day(2), tz="UTC").to_pydatetime() + dt.timedelta(hours=12)
    daily = table(valid, syn.empty_quarantine(), params, as_of=as_of).reset_index()
    _, state = qu.apply_late_rows(daily, {}, as_of)
    assert sorted(state["days"]) == [syn.day(0), syn.day(1)]


def test_rules_judge_the_latest_days_and_late_rows_of_any_day(params):
    valid, quarantine = syn.null_merchants(
        syn.transactions(n_days=20), syn.empty_quarantine(), 2, 0.3
    )
    valid, quarantine = syn.null_merchants(valid, quarantine, 18, 0.005)
    daily = table(valid, quarantine, params).reset_index()
    _, state = qu.apply_late_rows(daily, {}, AS_OF)
    daily, _ = qu.apply_late_rows(
        table(syn.late_rows(valid, 5, 2), quarantine, params).reset_index(), state, AS_OF
    )
    rules = al.load_rules(params["rules"])
    found = qu.quality_alerts(daily, rules, params["quality"])
    got = sorted((a.rule, a.severity, a.day, a.column) for a in found)
    assert got == [
        ("late_rate", "warning", syn.day(5), None),  # 2 late rows of 402: 0.5 % < 1 %
        ("null_rate", "warning", syn.day(18), "merchant_id"),  # 2 of 400
    ], "day 2 is outside the last alert_days days; fraud_scenario is null by design"


def test_a_missing_contract_column_is_named(params):
    arrow = pa.Table.from_pandas(syn.transactions(n_days=1).drop(columns="amount"))
    with pytest.raises(ValueError, match=r"raw_transactions lacks contract columns \['amount'\]"):
        qu.day_partials(arrow, quarantined=False, edges=np.array([1.0]), as_of_ns=0)


def test_bad_histogram_settings_are_refused():
    with pytest.raises(ValueError, match="needs 0 < min < max and bins_per_decade >= 1"):
        qu.amount_edges({"min": 0, "max": 10, "bins_per_decade": 10})
    assert len(qu.amount_edges({"min": 0.01, "max": 100.0, "bins_per_decade": 10})) == 41
