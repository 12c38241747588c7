"""The pandera contract: every bad row is quarantined with its reason, nothing is lost."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from payments_ml.contracts import ContractError, contract_reasons, split_by_contract


@pytest.fixture
def transactions() -> pd.DataFrame:
    ts = pd.to_datetime(
        [
            "2025-06-11 10:00",
            "2025-06-11 10:05",
            "2025-06-11 11:00",
            "2025-06-11 12:00",
            "2025-06-11 13:00",
            "2025-06-11 14:00",
            "2025-06-11 15:00",
        ],
        utc=True,
    )
    return pd.DataFrame(
        {
            "transaction_id": [f"tx-{i}" for i in range(7)],
            "event_timestamp": ts,
            "customer_id": np.arange(7, dtype=np.int64),
            "card_id": np.arange(7, dtype=np.int64) + 100,
            "merchant_id": np.full(7, 5, dtype=np.int64),
            "amount": [10.0, 20.0, 5.5, 7.0, 1.0, 2.0, 3.0],
            "is_fraud": [False, True, False, False, False, False, False],
            "fraud_scenario": [None, "card_testing", None, None, None, None, None],
            "label_available_at": ts + pd.Timedelta(days=7),
            "event_date": "2025-06-11",
            "channel": "pos",  # extra columns are welcome
        }
    )


def test_valid_rows_pass_untouched(transactions):
    valid, quarantine = split_by_contract(transactions)
    pd.testing.assert_frame_equal(valid, transactions)
    assert len(quarantine) == 0 and "quarantine_reason" in quarantine


def test_each_known_defect_is_quarantined_with_its_reason(transactions):
    bad = transactions.copy()
    bad.loc[1, "amount"] = -3.2
    bad.loc[2, "amount"] = np.nan
    bad.loc[3, "transaction_id"] = "tx-0"  # duplicate of row 0: the first one stays valid
    bad.loc[4, "label_available_at"] = bad.loc[4, "event_timestamp"] - pd.Timedelta(hours=1)
    bad.loc[5, "fraud_scenario"] = "card_testing"  # a scenario on a genuine row
    bad.loc[6, "event_date"] = "2025-06-12"  # wrong partition
    valid, quarantine = split_by_contract(bad)
    reasons = dict(zip(quarantine["transaction_id"], quarantine["quarantine_reason"], strict=True))
    assert list(valid["transaction_id"]) == ["tx-0"]
    assert reasons == {
        "tx-1": "amount: greater_than(0)",
        "tx-2": "amount: null",
        "tx-0": "transaction_id: duplicate",
        "tx-4": "label_available_at: not before event_timestamp",
        "tx-5": "fraud_scenario: null on genuine transactions",
        "tx-6": "event_date: UTC date of event_timestamp",
    }
    assert len(valid) + len(quarantine) == len(bad)


def test_a_row_breaking_several_checks_lists_them_all(transactions):
    bad = transactions.copy()
    bad.loc[2, "amount"] = 0.0
    bad.loc[2, "label_available_at"] = bad.loc[2, "event_timestamp"] - pd.Timedelta(days=1)
    reasons = contract_reasons(bad)
    assert reasons[2] == "amount: greater_than(0); label_available_at: not before event_timestamp"
    assert reasons.drop(index=2).isna().all()


def test_a_missing_column_fails_naming_it(transactions):
    with pytest.raises(ContractError, match="missing column 'amount'"):
        split_by_contract(transactions.drop(columns="amount"))


def test_a_wrong_type_fails_naming_the_column(transactions):
    with pytest.raises(ContractError, match="column 'customer_id' should be dtype\\('int64'\\)"):
        split_by_contract(
            transactions.assign(customer_id=transactions["customer_id"].astype(float))
        )


def test_the_index_of_the_input_does_not_matter(transactions):
    shuffled = transactions.set_index(pd.Index([9, 3, 5, 1, 0, 2, 4]))
    shuffled.iloc[1, shuffled.columns.get_loc("amount")] = -1.0
    valid, quarantine = split_by_contract(shuffled)
    assert list(quarantine["transaction_id"]) == ["tx-1"]
    assert len(valid) == 6
