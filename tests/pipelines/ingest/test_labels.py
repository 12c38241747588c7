"""A labels file beside the transactions: the feed the ingest writes, and what the labels
stage makes of it; without a labels file, the inline labels and an emptied feed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from payments_ml.config import load_parameters
from payments_ml.datasets import ParquetFilesDataset, RayParquetDataset
from payments_ml.labels.feed import FEED_COLUMNS
from payments_ml.pipelines.ingest import create_pipeline
from payments_ml.pipelines.labels.nodes import resolve_labels
from tests.conftest import PROJECT_ROOT
from tests.pipelines.ingest.sparkov import sparkov_sample, sparkov_transactions

pytestmark = pytest.mark.usefixtures("ray_session")

# The labels file of a chargeback system: its own names, verdict words, local times.
LABELS = {
    "columns": {
        "transaction_id": "txn_ref",
        "is_fraud": "verdict",
        "reported_at": "reported",
        "source": "channel",
    },
    "timestamp": {"unit": "iso", "format": "%d/%m/%Y %H:%M", "timezone": "Europe/Paris"},
    "label": {"true_values": ["fraud"], "false_values": ["legit"]},
    "source": "bank_feed",
}


@pytest.fixture(scope="module")
def sparkov_params() -> dict:
    # No alert log: the shipped one is under the repository's data/.
    return load_parameters(PROJECT_ROOT)["ingest"] | {"alerts_path": None}


def _run(params: dict, root: Path, run_date: str | None = None) -> DataCatalog:
    """The ingest pipeline with the feed and the quarantines on disk under ``root`` (with
    ``run_date``: that night's, its partitions replaced as the catalog does)."""
    folders = {
        "raw_transactions": ("transactions", ["event_date"]),
        "transactions_quarantine": ("quarantine", ["event_date"]),
        "labels": ("labels", ["report_date"]),
        "labels_file_quarantine": ("labels_file_quarantine", None),
    }
    catalog = DataCatalog(
        {
            name: RayParquetDataset(
                filepath=str(root / folder),
                partition_cols=cols,
                replace_partitions=run_date if cols else None,
            )
            for name, (folder, cols) in folders.items()
        }
        | {"params:ingest": MemoryDataset(params | {"run_date": run_date})}
        | {"ingest_summary": MemoryDataset()}
        | {
            f"stored_{n}": MemoryDataset(pd.DataFrame())
            for n in ("customers", "cards", "merchants")
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def _resolve(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """What the labels stage makes of the folders the ingest wrote."""
    reports = ParquetFilesDataset(filepath=str(root / "labels")).load()
    transactions = ParquetFilesDataset(filepath=str(root / "transactions")).load()
    return resolve_labels(None, reports, transactions)


def test_a_labels_file_becomes_the_feed_by_report_day_and_the_labels_stage_resolves_it(
    sparkov_params, tmp_path
):
    rows = sparkov_transactions(60, n_customers=8, n_merchants=5, n_days=3, seed=11)
    rows.drop(columns="is_fraud").to_csv(tmp_path / "tx.csv")  # no label in the file
    ids = rows["trans_num"]
    reports = pd.DataFrame(
        [
            [ids[3], "fraud", "05/01/2019 00:30", "chargeback"],  # UTC: 4 January 23:30
            [ids[7], "FRAUD", "06/01/2019 09:00", None],  # no channel: bank_feed
            [ids[7], "legit", "07/01/2019 09:00", "analyst"],  # supersedes the fraud
            ["not-a-transaction", "fraud", "06/01/2019 10:00", "chargeback"],
            [None, "fraud", "06/01/2019 10:00", "chargeback"],
            [ids[9], "fraud", "sometime", "chargeback"],
            [ids[9], "maybe", "06/01/2019 10:00", "analyst"],
            [ids[9], "", "06/01/2019 10:00", "analyst"],  # an empty verdict: null
        ],
        columns=["txn_ref", "verdict", "reported", "channel"],
    )
    reports.to_csv(tmp_path / "labels.csv", index=False)
    with (tmp_path / "labels.csv").open("a") as f:
        f.write("x,fraud\n")  # two fields of four: quarantined, not fatal
    columns = sparkov_params["columns"] | {"is_fraud": None}
    labels = LABELS | {"path": str(tmp_path / "labels.csv")}
    params = sparkov_params | {"path": str(tmp_path / "tx.csv"), "columns": columns}
    out = tmp_path / "out"
    catalog = _run(params | {"labels": labels}, out)

    summary = catalog.load("ingest_summary")
    assert summary["valid"] == 60 and summary["frauds"] == 0  # genuine until reported
    assert summary["labels"]["rows"] == 9
    assert (summary["labels"]["reports"], summary["labels"]["quarantined"]) == (4, 5)
    assert summary["labels"]["quarantine_by_check"] == {
        "csv row: expected 4 fields, got 2": 1,
        "is_fraud: not in label.true_values/false_values": 1,
        "is_fraud: null": 1,
        "reported_at: not a timestamp (iso)": 1,
        "transaction_id: null": 1,
    }
    days = sorted(p.name for p in (out / "labels").glob("report_date=*"))
    assert days == ["report_date=2019-01-04", "report_date=2019-01-06", "report_date=2019-01-07"]
    feed = pd.read_parquet(out / "labels")
    assert set(FEED_COLUMNS) <= set(feed.columns) and len(feed) == 4
    assert sorted(feed["source"]) == ["analyst", "bank_feed", "chargeback", "chargeback"]
    bad = pd.read_parquet(out / "labels_file_quarantine")
    assert len(bad) == 5 and bad["source_record"].str.contains("sometime").sum() == 1
    assert bad["source_record"].str.contains('"x,fraud"').sum() == 1

    labelled, quarantined, counts = _resolve(out)
    assert dict(zip(labelled["transaction_id"], labelled["is_fraud"], strict=True)) == {
        ids[3]: True,
        ids[7]: False,
    }
    assert labelled.set_index("transaction_id").loc[ids[3], "label_available_at"] == (
        pd.Timestamp("2019-01-04 23:30", tz="UTC")
    )
    reasons = quarantined.set_index("transaction_id")["quarantine_reason"]
    assert reasons["not-a-transaction"] == "unknown transaction_id: not in raw_transactions"
    assert reasons[ids[7]].startswith("superseded by a later contradicting report")
    assert counts["reports"] == 4 and counts["quarantined"] == 2


def test_without_a_labels_file_inline_labels_stay_and_a_stale_feed_is_emptied(
    sparkov_params, tmp_path
):
    """Sparkov's inline labels, unchanged; a feed data_gen left behind must not relabel them."""
    source = tmp_path / "sparkov.csv"
    sparkov_sample().to_csv(source)
    out = tmp_path / "out"
    stale = out / "labels" / "report_date=2019-01-05"
    stale.mkdir(parents=True)
    old = sparkov_sample().head(2)
    pd.DataFrame(
        {
            "transaction_id": old["trans_num"],
            "is_fraud": True,
            "reported_at": pd.Timestamp("2019-01-05", tz="UTC"),
            "source": "chargeback",
        }
    ).to_parquet(stale / "part-00000-0.parquet")

    catalog = _run(sparkov_params | {"path": str(source)}, out)

    summary = catalog.load("ingest_summary")
    assert (summary["rows"], summary["quarantined"]) == (400, 5)
    assert summary["is_fraud"] == "source column 'is_fraud'" and summary["frauds"] > 0
    assert summary["labels"]["source"] is None and "emptied" in summary["labels"]["note"]
    assert not stale.exists()
    assert ParquetFilesDataset(filepath=str(out / "labels")).load() is None  # "no feed"
    assert catalog.load("labels").count() == 0  # empty, with the feed's columns
    assert set(FEED_COLUMNS) <= set(catalog.load("labels").schema().names)
    labelled, quarantined, counts = _resolve(out)
    assert len(labelled) == len(quarantined) == counts["reports"] == 0


def test_a_night_writes_only_its_report_day_and_quarantines_reports_of_other_days(
    sparkov_params, tmp_path, caplog
):
    rows = sparkov_transactions(40, n_customers=6, n_merchants=4, n_days=2, seed=12)
    night = rows[rows["trans_date_trans_time"].str.startswith("2019-01-02")]
    night.to_csv(tmp_path / "tx.csv")
    ids = night["trans_num"].tolist()
    pd.DataFrame(
        [
            [ids[0], "fraud", "02/01/2019 15:00", "chargeback"],  # the night's report
            [ids[1], "fraud", "03/01/2019 15:00", "chargeback"],  # arrives on another day
        ],
        columns=["txn_ref", "verdict", "reported", "channel"],
    ).to_csv(tmp_path / "labels.csv", index=False)
    out = tmp_path / "out"
    earlier = out / "labels" / "report_date=2019-01-01"  # an earlier night's reports
    earlier.mkdir(parents=True)
    (earlier / "part-00000-0.parquet").write_bytes(b"kept as it is")
    labels = LABELS | {"path": str(tmp_path / "labels.csv")}
    columns = sparkov_params["columns"] | {"is_fraud": None}
    params = sparkov_params | {"path": str(tmp_path / "tx.csv"), "columns": columns}

    catalog = _run(params | {"labels": labels}, out, run_date="2019-01-02")

    summary = catalog.load("ingest_summary")["labels"]
    assert (summary["reports"], summary["quarantined"]) == (1, 1)
    assert summary["other_days"] == {"2019-01-03": 1}
    assert summary["quarantine_by_check"] == {"reported_at: not on run_date 2019-01-02": 1}
    assert "1 report(s) dated on other days than run_date 2019-01-02" in caplog.text
    days = sorted(p.name for p in (out / "labels").glob("report_date=*"))
    assert days == ["report_date=2019-01-01", "report_date=2019-01-02"]
    assert (earlier / "part-00000-0.parquet").read_bytes() == b"kept as it is"
    tonight = pd.read_parquet(out / "labels" / "report_date=2019-01-02")
    assert tonight["transaction_id"].tolist() == [ids[0]]
    assert pd.read_parquet(out / "labels_file_quarantine")["transaction_id"].tolist() == [ids[1]]
