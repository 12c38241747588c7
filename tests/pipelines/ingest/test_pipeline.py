"""The ingest on the session's Ray cluster: conservation, idempotence, catalogues."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import ParquetDataset

from payments_ml.config import load_parameters
from payments_ml.contracts import split_by_contract
from payments_ml.datasets import OptionalParquetDataset, RayParquetDataset, to_pandas
from payments_ml.pipelines.ingest import create_pipeline
from payments_ml.pipelines.ingest.nodes import (
    derive_catalogues,
    entity_stats,
    ingest_transactions,
    plan_ingest,
)
from tests.conftest import PROJECT_ROOT
from tests.pipelines.ingest.sparkov import SAMPLE_DEFECTS, sparkov_sample, sparkov_transactions

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def sparkov_params() -> dict:
    # No alert log: the shipped one is under the repository's data/.
    return load_parameters(PROJECT_ROOT)["ingest"] | {"alerts_path": None}


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = ["transaction_id", "event_timestamp", "quarantine_reason"]
    keys = [k for k in keys if k in frame]
    frame = frame[sorted(frame.columns)].sort_values(keys, ignore_index=True)
    return frame.astype({c: "string" for c in frame.select_dtypes("category").columns})


def test_every_row_is_valid_or_quarantined_under_the_check_it_failed(sparkov_params, tmp_path):
    """Two files: the duplicate id crosses blocks, its later copy comes first."""
    rows = sparkov_transactions(300, n_customers=30, n_merchants=20, n_days=6, seed=3)
    rows = rows.astype(object)
    rows.loc[10, "cc_num"] = None  # null id
    rows.loc[20, "amt"] = -3.2  # negative amount
    rows.loc[40, "trans_date_trans_time"] = "not a time"  # unparseable timestamp
    rows.loc[60, "trans_num"] = None  # no transaction id
    rows.loc[250, "trans_num"] = rows.loc[50, "trans_num"]  # duplicate, later in time
    folder = tmp_path / "export"
    folder.mkdir()
    rows.iloc[150:].to_csv(folder / "a.csv")  # holds the later copy of the duplicate
    rows.iloc[:150].to_csv(folder / "b.csv")
    with (folder / "b.csv").open("a") as f:
        f.write("a line cut short\n")  # one field: it must not fail the file
    (folder / "_SUCCESS").write_text("")  # what Spark leaves in an export folder

    plan = plan_ingest(sparkov_params | {"path": str(folder), "partitions": 3})
    valid, quarantine, summary, _ = ingest_transactions(plan)
    valid, quarantine = to_pandas(valid), to_pandas(quarantine)

    assert len(valid) + len(quarantine) == len(rows) + 1 == summary["rows"]
    assert (summary["valid"], summary["quarantined"]) == (len(valid), 6)
    fields = len((folder / "b.csv").read_text().split("\n", 1)[0].split(","))
    cut = f"csv row: expected {fields} fields, got 1"
    malformed = quarantine[quarantine["quarantine_reason"] == cut]
    assert len(malformed) == 1 and malformed["transaction_id"].isna().all()
    assert json.loads(malformed["source_record"].iloc[0]) == {"line": "a line cut short"}
    quarantine = quarantine[quarantine["quarantine_reason"] != cut]
    reasons = dict(zip(quarantine["transaction_id"], quarantine["quarantine_reason"], strict=True))
    assert reasons[rows.loc[10, "trans_num"]] == "customer_id: null"
    assert reasons[rows.loc[20, "trans_num"]] == "amount: greater_than(0)"
    assert reasons[rows.loc[40, "trans_num"]] == "event_timestamp: not a timestamp (iso)"
    assert reasons[rows.loc[50, "trans_num"]] == "transaction_id: duplicate"
    assert reasons[None] == "transaction_id: null"
    kept = valid.set_index("transaction_id").loc[rows.loc[50, "trans_num"]]
    assert kept["amount"] == rows.loc[50, "amt"]  # the earlier copy stays valid
    assert summary["quarantine_by_check"] == {
        "amount: greater_than(0)": 1,
        cut: 1,
        "customer_id: null": 1,
        "event_timestamp: not a timestamp (iso)": 1,
        "transaction_id: duplicate": 1,
        "transaction_id: null": 1,
    }
    # The valid rows meet the contract on their own, as features will read them.
    again_valid, again_quarantined = split_by_contract(valid)
    assert len(again_quarantined) == 0 and len(again_valid) == len(valid)
    assert valid["event_timestamp"].is_monotonic_increasing  # day blocks in time order
    assert summary["days"] == valid["event_date"].nunique() == 6


def test_a_parquet_source_with_epoch_milliseconds_and_numeric_ids(sparkov_params, tmp_path):
    rows = sparkov_transactions(120, n_customers=12, n_merchants=8, n_days=3, seed=4)
    ms = pd.to_datetime(rows["trans_date_trans_time"], utc=True).astype("int64") // 10**6
    rows = rows.assign(ts_ms=ms, merchant_no=rows["zip"], is_fraud=rows["is_fraud"] == 1)
    rows.to_parquet(tmp_path / "tx.parquet", index=False)
    params = sparkov_params | {
        "path": str(tmp_path / "tx.parquet"),
        "columns": sparkov_params["columns"] | {"merchant_id": "merchant_no"},
        "timestamp": {"column": "ts_ms", "unit": "ms"},
        "ids": {"merchant_id": "int"},
        "extra_columns": {"category": "category", "customer_lat": "lat"},
        "catalogues": {"customers": ["customer_lat"], "merchants": ["category"]},
    }
    valid, quarantine, summary, _ = ingest_transactions(plan_ingest(params))
    valid = to_pandas(valid).sort_values("transaction_id", ignore_index=True)
    expected = rows.sort_values("trans_num", ignore_index=True)
    assert summary["quarantined"] == 0 and len(valid) == len(rows)
    assert (valid["customer_id"] == expected["cc_num"]).all()  # 19 digits, exact
    assert (valid["merchant_id"] == expected["merchant_no"]).all()
    stamps = pd.to_datetime(expected["trans_date_trans_time"], utc=True)
    assert (valid["event_timestamp"] == stamps).all()
    assert valid["is_fraud"].sum() == expected["is_fraud"].sum()


def test_catalogues_are_derived_from_the_valid_transactions(sparkov_params, tmp_path):
    rows = sparkov_transactions(200, n_customers=15, n_merchants=10, n_days=4, seed=5)
    # A second card for one customer: 'card' = cc_num, except three later rows of customer 0.
    rows["card"] = rows["cc_num"]
    first_customer = rows["cc_num"].iloc[0]
    later = rows.index[rows["cc_num"] == first_customer][-3:]
    rows.loc[later, "card"] = 77
    rows.to_csv(tmp_path / "tx.csv")
    params = sparkov_params | {
        "path": str(tmp_path / "tx.csv"),
        "columns": sparkov_params["columns"] | {"card_id": "card"},
    }
    plan = plan_ingest(params | {"partitions": 3})
    valid, _, _, stats = ingest_transactions(plan)
    tx = to_pandas(valid)
    customers, cards, merchants = derive_catalogues(stats, plan)
    # Stats of any split of the rows add up to the same catalogues.
    parts = [entity_stats(tx.iloc[i::5], plan) for i in range(5)]
    again = derive_catalogues({k: pd.concat([p[k] for p in parts]) for k in stats}, plan)
    for frame, same in zip((customers, cards, merchants), again, strict=True):
        pd.testing.assert_frame_equal(frame, same)

    assert set(customers["customer_id"]) == set(tx["customer_id"])
    assert set(merchants["merchant_id"]) == set(tx["merchant_id"])
    assert customers["n_transactions"].sum() == cards["n_transactions"].sum() == len(tx)
    assert merchants["popularity"].sum() == pytest.approx(1.0)
    by_customer = tx.groupby("customer_id")
    first = customers.set_index("customer_id")
    assert (first["first_seen"] == by_customer["event_timestamp"].min()).all()
    assert (first["avg_amount"] - by_customer["amount"].mean()).abs().max() < 1e-9
    # Carried attributes as of the first transaction; hashed merchant ids keep their name.
    earliest = tx.sort_values("event_timestamp").drop_duplicates("customer_id")
    pd.testing.assert_series_equal(
        first["customer_lat"], earliest.set_index("customer_id")["customer_lat"].sort_index()
    )
    names = tx.drop_duplicates("merchant_id").set_index("merchant_id")["source_merchant_id"]
    pd.testing.assert_series_equal(
        merchants.set_index("merchant_id")["source_merchant_id"], names.sort_index()
    )
    # The customer with two cards: the busier one is primary.
    two = cards[cards["customer_id"] == first_customer].set_index("card_id")
    assert len(two) == 2 and first.loc[first_customer, "n_cards"] == 2
    assert two.loc[77, "n_transactions"] == 3 and not two.loc[77, "is_primary"]
    assert two.loc[first_customer, "is_primary"]


def _run(params: dict, root: Path, run_date: str | None = None) -> dict:
    """The ingest pipeline on files under ``root``, as the catalog writes them: with
    ``run_date``, only that night's partitions are replaced."""
    catalog = DataCatalog(
        {
            "raw_transactions": RayParquetDataset(
                filepath=str(root / "transactions"),
                partition_cols=["event_date"],
                replace_partitions=run_date,
            ),
            "transactions_quarantine": RayParquetDataset(
                filepath=str(root / "quarantine"),
                partition_cols=["event_date"],
                replace_partitions=run_date,
            ),
            "params:ingest": MemoryDataset(params | {"run_date": run_date}),
            "ingest_summary": MemoryDataset(),
            "ingest_entity_stats": MemoryDataset(),
        }
        | {
            f"{prefix}{name}": kind(filepath=str(root / f"{name}.parquet"))
            for name in ("customers", "cards", "merchants")
            for prefix, kind in (("", ParquetDataset), ("stored_", OptionalParquetDataset))
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return {
        name: catalog.load(name) for name in ("ingest_summary", "customers", "cards", "merchants")
    }


def _folder(root: Path) -> pd.DataFrame:
    return _sorted(pd.read_parquet(root))


def test_rerunning_the_pipeline_replaces_what_the_last_run_wrote(sparkov_params, tmp_path):
    source = tmp_path / "sparkov.csv"
    sparkov_sample().to_csv(source)
    params = sparkov_params | {"path": str(source)}
    out = tmp_path / "out"
    # A previous data_gen run's day that the ingest does not cover must go too.
    stale = out / "transactions" / "event_date=2030-01-01"
    stale.mkdir(parents=True)
    sparkov_sample().head(2).to_parquet(stale / "part-0.parquet")

    first = _run(params, out)
    files = sorted(p.relative_to(out) for p in out.rglob("*.parquet"))
    tables = {name: _folder(out / name) for name in ("transactions", "quarantine")}
    second = _run(params, out)

    assert sorted(p.relative_to(out) for p in out.rglob("*.parquet")) == files
    for name, before in tables.items():
        pd.testing.assert_frame_equal(_folder(out / name), before)
    assert first["ingest_summary"] == second["ingest_summary"]
    pd.testing.assert_frame_equal(first["customers"], second["customers"])
    assert not stale.exists()
    summary = second["ingest_summary"]
    assert summary["rows"] == 400 == len(tables["transactions"]) + len(tables["quarantine"])
    assert summary["quarantine_by_check"] == {check: 1 for check in SAMPLE_DEFECTS.values()}
    # One file per day: the day blocks hold whole days.
    days = list((out / "transactions").glob("event_date=*"))
    assert len(days) == summary["days"] == 21
    assert all(len(list(day.glob("*.parquet"))) == 1 for day in days)


def test_a_wrong_timestamp_unit_quarantines_everything_and_the_outputs_stay_readable(
    sparkov_params, tmp_path, caplog
):
    source = tmp_path / "sparkov.csv"
    sparkov_sample(60).to_csv(source)
    # Text timestamps read as epoch seconds: not one row maps.
    wrong_unit = {"column": "trans_date_trans_time", "unit": "s"}
    accept_all = {"warn_share": 0.01, "fail_share": 1.0}  # the default fails the run
    plan = plan_ingest(
        sparkov_params | {"path": str(source), "timestamp": wrong_unit, "quarantine": accept_all}
    )
    valid, quarantine, summary, stats = ingest_transactions(plan)
    assert (summary["valid"], summary["quarantined"]) == (0, 60)
    assert summary["quarantine_by_check"]["event_timestamp: not a timestamp (s)"] == 60
    assert "No row of" in caplog.text

    out = RayParquetDataset(filepath=str(tmp_path / "transactions"), partition_cols=["event_date"])
    out.save(valid)
    empty = out.load()  # from the schema file: features can tell what is missing
    assert empty.count() == 0 and "customer_id" in empty.schema().names
    RayParquetDataset(filepath=str(tmp_path / "q"), partition_cols=["event_date"]).save(quarantine)
    assert len(pd.read_parquet(tmp_path / "q")) == 60  # event_date=unknown, readable
    customers, cards, merchants = derive_catalogues(stats, plan)
    assert len(customers) == len(cards) == len(merchants) == 0
    assert "customer_id" in customers and "merchant_id" in merchants


def test_a_large_quarantine_warns_then_fails_naming_the_count_of_each_check(
    sparkov_params, tmp_path, caplog
):
    """An upstream bug that duplicates ids: within ingest.quarantine.warn_share (1 %) the
    ingest is quiet; above it, a warning and an alert in the alert log; above fail_share
    (10 %), a critical alert and the run stops before a transaction is written."""
    from payments_ml.monitoring.alerts import read_alerts  # noqa: PLC0415
    from payments_ml.pipelines.ingest.nodes import QuarantineTooLarge  # noqa: PLC0415

    rows = sparkov_transactions(200, n_customers=20, n_merchants=10, n_days=3, seed=5)
    rows = rows.sort_values("unix_time", ignore_index=True)
    alerts = tmp_path / "alerts.jsonl"

    def ingest(duplicates: int):
        copy = rows.copy()
        firsts = copy.loc[: duplicates - 1, "trans_num"].to_numpy()
        copy.loc[100 : 99 + duplicates, "trans_num"] = firsts  # later copies: quarantined
        source = tmp_path / f"dup{duplicates}.csv"
        copy.to_csv(source)
        params = sparkov_params | {"path": str(source), "alerts_path": str(alerts)}
        return ingest_transactions(plan_ingest(params))

    assert ingest(1)[2]["quarantined"] == 1 and not alerts.exists()  # 0.5 %
    assert ingest(10)[2]["quarantined"] == 10  # 5 %
    warned = read_alerts(alerts)
    assert [(a["severity"], a["metric"], a["value"]) for a in warned] == [
        ("warning", "ingest_quarantine_share", 0.05)
    ]
    assert "10 of 200 rows quarantined (5.0%, above ingest.quarantine.warn_share 1.0%)" in (
        caplog.text
    )
    with pytest.raises(QuarantineTooLarge) as stopped:
        ingest(29)  # 14.5 %
    message = str(stopped.value)
    assert "29 of 200 rows quarantined (14.5%, above ingest.quarantine.fail_share 10.0%)" in message
    assert "transaction_id" in message.split("by check:")[1]
    assert "No transaction was written" in message
    critical = read_alerts(alerts)[-1]
    assert critical["severity"] == "critical" and critical["value"] == 0.145
    assert critical["context"]["quarantine_by_check"]


def _bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def test_a_night_replaces_its_day_quarantines_other_days_and_merges_the_catalogues(
    sparkov_params, tmp_path, caplog
):
    """Two nights, one file each, equal one ingest of both files (less the row of another
    day, which the night quarantines with a row without a time); a rerun changes no byte."""
    rows = sparkov_transactions(240, n_customers=25, n_merchants=12, n_days=3, seed=9)
    day = rows["trans_date_trans_time"].str[:10]
    stray = rows[day == "2019-01-03"].head(1)  # a row of the next day, in night 2's file
    timeless = rows[day == "2019-01-02"].head(1).assign(trans_date_trans_time="not a time")
    files = {
        "2019-01-01": rows[day == "2019-01-01"],
        "2019-01-02": pd.concat([rows[day == "2019-01-02"].iloc[1:], stray, timeless]),
    }
    for night, frame in files.items():
        frame.to_csv(tmp_path / f"{night}.csv")
    pd.concat([files["2019-01-01"], files["2019-01-02"].drop(stray.index)]).to_csv(
        tmp_path / "both.csv"
    )

    nightly = tmp_path / "nightly"
    for night in files:
        out = _run(sparkov_params | {"path": str(tmp_path / f"{night}.csv")}, nightly, night)
    written = _bytes(nightly)
    again = _run(sparkov_params | {"path": str(tmp_path / "2019-01-02.csv")}, nightly, "2019-01-02")
    assert _bytes(nightly) == written and again["ingest_summary"] == out["ingest_summary"]

    summary = out["ingest_summary"]
    assert summary["run_date"] == "2019-01-02" and summary["other_days"] == {"2019-01-03": 1}
    assert summary["quarantine_by_check"] == {
        "event_timestamp: not a timestamp (iso)": 1,
        "event_timestamp: not on run_date 2019-01-02": 1,
    }
    assert "1 transaction(s) dated on other days than run_date 2019-01-02" in caplog.text
    quarantine = pd.read_parquet(nightly / "quarantine")
    assert quarantine["event_date"].astype(str).tolist() == ["2019-01-02"] * 2
    assert set(quarantine["transaction_id"]) == {*stray["trans_num"], *timeless["trans_num"]}
    assert not (nightly / "transactions" / "event_date=2019-01-03").exists()

    whole = _run(sparkov_params | {"path": str(tmp_path / "both.csv")}, tmp_path / "whole")
    assert "run_date" not in whole["ingest_summary"]  # a whole ingest's summary as before
    pd.testing.assert_frame_equal(
        _folder(nightly / "transactions"), _folder(tmp_path / "whole" / "transactions")
    )
    for name in ("customers", "cards", "merchants"):
        floats = [c for c in out[name] if pd.api.types.is_float_dtype(out[name][c])]
        exact = [c for c in out[name] if c not in floats]
        pd.testing.assert_frame_equal(out[name][exact], whole[name][exact], check_exact=True)
        pd.testing.assert_frame_equal(out[name][floats], whole[name][floats], rtol=1e-12)
