"""Mapping units: the plan's checks, every timestamp unit, ids, labels, delays, carried columns."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from payments_ml.config import load_parameters
from payments_ml.ingest.mapping import IngestPlan, LabelsPlan, map_labels, map_table, plan_ingest
from payments_ml.labels.feed import FEED_COLUMNS
from tests.conftest import PROJECT_ROOT

BASE = {
    "columns": {
        "transaction_id": "tx",
        "customer_id": "cust",
        "merchant_id": "shop",
        "amount": "amt",
        "is_fraud": "fraud",
    },
    "timestamp": {"column": "ts", "unit": "iso"},
    "ids": {"merchant_id": "hash"},
}


def _source(n: int = 3, **columns) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "tx": [f"t{i}" for i in range(n)],
            "ts": ["2025-03-01 10:00:00"] * n,
            "cust": [str(100 + i) for i in range(n)],
            "shop": ["Shop A"] * n,
            "amt": ["12.5"] * n,
            "fraud": ["0"] * n,
        }
    )
    return frame.assign(**columns)


def _plan(tmp_path: Path, frame: pd.DataFrame, fmt: str = "csv", **params) -> IngestPlan:
    path = tmp_path / f"source.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    merged = {**BASE, **params, "path": str(path)}
    for key in ("columns", "timestamp"):
        merged[key] = {**BASE[key], **params.get(key, {})}
    return plan_ingest(merged)


def _map(plan: IngestPlan) -> pd.DataFrame:
    """Read the source as the pipeline does (CSV: every mapped column as text), map it."""
    if plan.format == "csv":
        table = pa_csv.read_csv(plan.path, **plan.csv_options())
    else:
        table = pa.parquet.read_table(plan.path, columns=plan.source_columns)
    mapped = map_table(table, plan)
    assert mapped.schema == plan.arrow_schema()
    return mapped.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


# -- the plan -------------------------------------------------------------------------------


def test_shipped_parameters_plan_the_committed_sparkov_fixture():
    params = load_parameters(PROJECT_ROOT)["ingest"]
    params["path"] = str(PROJECT_ROOT / params["path"])
    plan = plan_ingest(params)
    assert plan.format == "csv"
    assert plan.columns["event_timestamp"] == "trans_date_trans_time"
    assert "card_id" not in plan.columns  # defaults to the customer
    assert plan.extra_columns["customer_lat"] == ("lat", "float64")  # inferred
    assert plan.extra_columns["customer_zip"] == ("zip", "string")  # declared
    assert plan.hashed_ids == ["merchant_id"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"colums": {}}, r"ingest: unknown key\(s\) \['colums'\]"),
        ({"columns": {"amount": None}}, r"\['amount'\] must name a source column"),
        ({"columns": {"amount": "amount_eur"}}, r"source column\(s\) \['amount_eur'\] not in"),
        ({"timestamp": {"unit": "minutes"}}, r"unit must be 'iso' or one of"),
        ({"timestamp": {"origin": "2025-01-01"}}, r"origin applies to numeric offsets"),
        ({"timestamp": {"timezone": "Mars/Olympus"}}, r"unknown time zone 'Mars/Olympus'"),
        ({"ids": {"customer_id": "uuid"}}, r"ingest.ids.customer_id must be 'int'"),
        ({"extra_columns": {"amount": "amt"}}, r"'amount' is a column the ingest writes"),
        ({"extra_columns": {"x": {"column": "amt", "type": "decimal"}}}, r"type must be auto"),
        ({"catalogues": {"customers": ["segment"]}}, r"\['segment'\] are not carried columns"),
        ({"label": {"true_values": ["1"], "false_values": [1]}}, r"share \['1'\]"),
        ({"label_delay_days": -1}, r"label_delay_days must be >= 0"),
        ({"columns": {"event_timestamp": "when"}}, r"timestamp.column 'ts' and columns"),
    ],
)
def test_a_mapping_mistake_is_named_before_any_row_is_read(tmp_path, params, message):
    with pytest.raises(ValueError, match=message):
        _plan(tmp_path, _source(), **params)


def test_missing_file_and_unknown_suffix_say_what_to_set(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        plan_ingest({**BASE, "path": str(tmp_path / "nope.csv")})
    (tmp_path / "export.dat").write_text("tx\n1\n")
    with pytest.raises(ValueError, match="set ingest.format to csv or parquet"):
        plan_ingest({**BASE, "path": str(tmp_path / "export.dat")})


def test_a_tsv_file_is_read_with_tabs(tmp_path):
    _source().to_csv(tmp_path / "tx.tsv", sep="\t", index=False)
    plan = plan_ingest({**BASE, "path": str(tmp_path / "tx.tsv")})
    assert plan.csv["delimiter"] == "\t"
    assert _map(plan)["quarantine_reason"].isna().all()


@pytest.mark.parametrize(("sep", "spelt"), [("|", "'|'"), (";", "';'")])
def test_a_file_with_another_delimiter_is_named_with_the_key_to_set(tmp_path, sep, spelt):
    _source().to_csv(tmp_path / "tx.csv", sep=sep, index=False)
    with pytest.raises(ValueError) as refused:
        plan_ingest({**BASE, "path": str(tmp_path / "tx.csv")})
    assert f"the file looks {spelt}-delimited; set ingest.csv.delimiter: {spelt}" in str(
        refused.value
    )
    plan = plan_ingest({**BASE, "path": str(tmp_path / "tx.csv"), "csv": {"delimiter": sep}})
    assert _map(plan)["quarantine_reason"].isna().all()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_folder_file_of_another_layout_is_named_before_any_row_is_read(tmp_path, fmt):
    folder = tmp_path / "export"
    folder.mkdir()
    write = {"csv": pd.DataFrame.to_csv, "parquet": pd.DataFrame.to_parquet}[fmt]
    write(_source(), folder / f"a.{fmt}", index=False)
    write(_source(), folder / f"b.{fmt}", index=False)
    write(pd.DataFrame({"id": [1], "name": ["x"]}), folder / f"customers.{fmt}", index=False)
    with pytest.raises(ValueError) as refused:
        plan_ingest({**BASE, "path": str(folder)})
    message = str(refused.value)
    assert f"1 of the 3 files in {folder} have another layout" in message
    assert f"{folder}/customers.{fmt} lacks ['tx', 'cust', 'shop', 'amt', 'fraud', 'ts']" in message
    assert "Keep one layout per folder" in message
    (folder / f"customers.{fmt}").unlink()
    assert plan_ingest({**BASE, "path": str(folder)}).format == fmt


@pytest.mark.parametrize("name", ["tx.csv.gz", "tx.parquet", "folder"])
def test_format_comes_from_the_suffix_or_the_folders_files(tmp_path, name):
    frame = _source()
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
        frame.to_parquet(path / "part-0.parquet", index=False)
    elif name.endswith(".gz"):
        frame.to_csv(path, index=False, compression="gzip")
    else:
        frame.to_parquet(path, index=False)
    plan = plan_ingest({**BASE, "path": str(path)})
    assert plan.format == ("csv" if name.endswith(".gz") else "parquet")


# -- timestamps -----------------------------------------------------------------------------


def test_iso_timestamps_in_any_iso_form_become_utc(tmp_path):
    stamps = [
        "2025-03-01 10:00:00",
        "2025-03-01T10:00:00.250",
        "2025-03-01T12:00:00+02:00",
        "2025-03-01T10:00:00Z",
        "2025-03-01",
    ]
    mapped = _map(_plan(tmp_path, _source(5, ts=stamps)))
    assert mapped["quarantine_reason"].isna().all()
    assert list(mapped["event_timestamp"]) == list(
        pd.to_datetime(
            [
                "2025-03-01 10:00:00",
                "2025-03-01 10:00:00.250",
                "2025-03-01 10:00:00",
                "2025-03-01 10:00:00",
                "2025-03-01 00:00:00",
            ],
            utc=True,
            format="ISO8601",
        )
    )
    assert list(mapped["event_date"]) == ["2025-03-01"] * 5


def test_naive_times_are_read_in_the_given_zone_and_impossible_ones_quarantined(tmp_path):
    # 2025-03-30 02:30 does not exist in Paris (clocks jump from 02:00 to 03:00).
    source = _source(2, ts=["2025-03-01 00:30:00", "2025-03-30 02:30:00"])
    mapped = _map(_plan(tmp_path, source, timestamp={"timezone": "Europe/Paris"}))
    assert mapped.loc[0, "event_timestamp"] == pd.Timestamp("2025-02-28 23:30", tz="UTC")
    assert mapped.loc[0, "event_date"] == "2025-02-28"  # the UTC day
    assert mapped.loc[1, "quarantine_reason"] == "event_timestamp: not a timestamp (iso)"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_date_and_a_time_of_day_in_two_columns_make_one_timestamp(tmp_path, fmt):
    """The layout of many bank exports (and generators): trans_date, trans_time."""
    source = _source(3, ts=["2025-03-01", "2025-03-02", None]).assign(
        at=["10:05:00", "23:59:59.5", "08:00:00"]
    )
    if fmt == "parquet":
        source["ts"] = pd.to_datetime(source["ts"]).dt.date  # a date column, a text time
    plan = _plan(tmp_path, source, fmt, timestamp={"column": "ts", "time_column": "at"})
    assert "at" in plan.source_columns
    mapped = _map(plan)
    assert list(mapped["event_timestamp"][:2]) == [
        pd.Timestamp("2025-03-01 10:05:00", tz="UTC"),
        pd.Timestamp("2025-03-02 23:59:59.5", tz="UTC"),
    ]
    assert mapped.loc[2, "quarantine_reason"] == "event_timestamp: null"


def test_two_columns_with_a_format_and_a_zone(tmp_path):
    source = _source(1, ts=["01/03/2025"]).assign(at=["10:05"])
    timestamp = {"time_column": "at", "format": "%d/%m/%Y %H:%M", "timezone": "Europe/Paris"}
    mapped = _map(_plan(tmp_path, source, timestamp=timestamp))
    assert mapped.loc[0, "event_timestamp"] == pd.Timestamp("2025-03-01 09:05", tz="UTC")
    with pytest.raises(ValueError, match="time_column .* needs unit: iso"):
        _plan(tmp_path, _source(1).assign(at=["1"]), timestamp={"time_column": "at", "unit": "s"})
    with pytest.raises(ValueError, match=r"source column\(s\) \['clock'\] not in"):
        _plan(tmp_path, source, timestamp={"time_column": "clock"})


def test_a_strptime_format_reads_non_iso_text(tmp_path):
    source = _source(2, ts=["01/03/2025 10:05", "31/02/2025 10:05"])
    mapped = _map(_plan(tmp_path, source, timestamp={"format": "%d/%m/%Y %H:%M"}))
    assert mapped.loc[0, "event_timestamp"] == pd.Timestamp("2025-03-01 10:05", tz="UTC")
    assert mapped.loc[1, "quarantine_reason"] == "event_timestamp: not a timestamp (iso)"


@pytest.mark.parametrize(
    ("unit", "values", "expected"),
    [
        ("s", ["1740823200", "1740823200.5"], ["2025-03-01 10:00:00", "2025-03-01 10:00:00.5"]),
        ("ms", ["1740823200123", "-1"], ["2025-03-01 10:00:00.123", "1969-12-31 23:59:59.999"]),
        ("us", ["1740823200000001", "0"], ["2025-03-01 10:00:00.000001", "1970-01-01"]),
        ("h", ["1", "48"], ["1970-01-01 01:00", "1970-01-03"]),
    ],
)
def test_epoch_numbers_in_each_unit_are_exact(tmp_path, unit, values, expected):
    mapped = _map(_plan(tmp_path, _source(2, ts=values), timestamp={"unit": unit}))
    assert mapped["quarantine_reason"].isna().all()
    assert list(mapped["event_timestamp"]) == list(
        pd.to_datetime(expected, utc=True, format="ISO8601")
    )


def test_offsets_count_from_the_origin_in_its_time_zone(tmp_path):
    # IEEE-CIS / PaySim style: seconds (or hours) since the start of the data.
    source = _source(3, ts=["0", "86400", "3600.25"])
    plan = _plan(
        tmp_path,
        source,
        timestamp={"unit": "s", "origin": "2025-01-01", "timezone": "Europe/Paris"},
    )
    mapped = _map(plan)
    start = pd.Timestamp("2024-12-31 23:00", tz="UTC")  # midnight in Paris
    assert list(mapped["event_timestamp"]) == [
        start,
        start + pd.Timedelta(days=1),
        start + pd.Timedelta(seconds=3600.25),
    ]


def test_unparseable_and_missing_times_are_named_not_raised(tmp_path):
    source = _source(4, ts=["1740823200", "soon", "", "1e30"])
    mapped = _map(_plan(tmp_path, source, timestamp={"unit": "s"}))
    assert list(mapped["quarantine_reason"]) == [
        None,
        "event_timestamp: not a timestamp (s)",
        "event_timestamp: null",
        "event_timestamp: not a timestamp (s)",  # beyond year 2262
    ]
    assert json.loads(mapped.loc[1, "source_record"])["ts"] == "soon"
    assert list(mapped["event_date"]) == ["2025-03-01", "unknown", "unknown", "unknown"]


def test_parquet_timestamps_keep_their_type(tmp_path):
    stamps = pd.to_datetime(["2025-03-01 10:00", "2025-03-01 11:00"])
    mapped = _map(_plan(tmp_path, _source(2, ts=stamps), fmt="parquet"))
    assert list(mapped["event_timestamp"]) == list(stamps.tz_localize("UTC"))


# -- ids, labels, delays --------------------------------------------------------------------


def test_integer_ids_stay_exact_up_to_int64_and_bad_ones_are_named(tmp_path):
    cust = ["4992346398065154184", " 42 ", "7.0", "9223372036854775808", "4e3", "abc", ""]
    mapped = _map(_plan(tmp_path, _source(7, cust=cust)))
    assert list(mapped["customer_id"][:3]) == [4992346398065154184, 42, 7]
    assert list(mapped["quarantine_reason"]) == [None] * 3 + [
        "customer_id: not an int64 integer"
    ] * 3 + ["customer_id: null"]
    assert mapped["card_id"].equals(mapped["customer_id"])  # no card column: one per customer


def test_parquet_integer_ids_with_gaps_keep_every_digit(tmp_path):
    cust = pd.array([4992346398065154184, None], dtype="Int64")
    mapped = _map(_plan(tmp_path, _source(2, cust=cust), fmt="parquet"))
    assert mapped.loc[0, "customer_id"] == 4992346398065154184
    assert mapped.loc[1, "quarantine_reason"] == "customer_id: null"


def test_hashed_ids_are_a_stable_blake2b_and_keep_the_source_text(tmp_path):
    shops = ["fraud_Rippin, Kub and Mann", "Shop B", "fraud_Rippin, Kub and Mann"]
    mapped = _map(_plan(tmp_path, _source(3, shop=shops)))
    digest = hashlib.blake2b(shops[0].encode(), digest_size=8).digest()
    assert mapped.loc[0, "merchant_id"] == int.from_bytes(digest, "big") >> 1
    ids = mapped["merchant_id"]
    assert ids[0] == ids[2] != ids[1]
    assert (mapped["merchant_id"] >= 0).all()
    assert list(mapped["source_merchant_id"]) == shops


def test_a_card_column_and_hashed_card_numbers(tmp_path):
    source = _source(2, card=["4111 1111", "4111 2222"])
    plan = _plan(tmp_path, source, columns={"card_id": "card"}, ids={"card_id": "hash"})
    mapped = _map(plan)
    assert mapped.loc[0, "card_id"] != mapped.loc[1, "card_id"]
    assert list(mapped["source_card_id"]) == ["4111 1111", "4111 2222"]
    assert mapped["customer_id"].tolist() == [100, 101]


def test_label_values_are_configurable_and_unknown_ones_named(tmp_path):
    source = _source(5, fraud=["Y", "n", " yes ", "maybe", ""])
    plan = _plan(tmp_path, source, label={"true_values": ["y", "yes"], "false_values": ["N", "no"]})
    mapped = _map(plan)
    assert list(mapped["is_fraud"][:3]) == [True, False, True]
    assert list(mapped["quarantine_reason"][3:]) == [
        "is_fraud: not in label.true_values/false_values",
        "is_fraud: null",
    ]


def test_numeric_and_boolean_labels_from_parquet(tmp_path):
    mapped = _map(_plan(tmp_path, _source(2, fraud=[1.0, 0.0]), fmt="parquet"))
    assert list(mapped["is_fraud"]) == [True, False]
    mapped = _map(_plan(tmp_path, _source(2, fraud=[True, False]), fmt="parquet"))
    assert list(mapped["is_fraud"]) == [True, False]


def test_label_time_defaults_to_the_delay_and_a_label_column_wins(tmp_path):
    mapped = _map(_plan(tmp_path, _source(1), label_delay_days=2.5))
    assert mapped.loc[0, "label_available_at"] == pd.Timestamp(
        "2025-03-01 10:00", tz="UTC"
    ) + pd.Timedelta(days=2.5)
    source = _source(3, reported=["2025-03-04 08:00:00", "", "later"])
    mapped = _map(_plan(tmp_path, source, columns={"label_available_at": "reported"}))
    assert mapped.loc[0, "label_available_at"] == pd.Timestamp("2025-03-04 08:00", tz="UTC")
    # No report time: final after the default delay (7 days).
    assert mapped.loc[1, "label_available_at"] == pd.Timestamp("2025-03-08 10:00", tz="UTC")
    assert mapped.loc[2, "quarantine_reason"] == "label_available_at: not a timestamp (iso)"


def test_every_failed_check_of_a_row_is_named_and_its_raw_values_kept(tmp_path):
    source = _source(2, amt=["12.5", "twelve"], cust=["100", ""])
    mapped = _map(_plan(tmp_path, source))
    assert mapped.loc[1, "quarantine_reason"] == "customer_id: null; amount: not a number"
    assert json.loads(mapped.loc[1, "source_record"]) == {
        "tx": "t1",
        "cust": None,
        "shop": "Shop A",
        "amt": "twelve",
        "fraud": "0",
        "ts": "2025-03-01 10:00:00",
    }
    assert pd.isna(mapped.loc[0, "source_record"])


def test_carried_columns_are_typed_and_bad_values_become_null(tmp_path):
    source = _source(
        3,
        lat=["36.07", "n/a", "-81.2"],
        zip=["02134", "28654", None],
        online=["true", "0", "perhaps"],
        scenario=["", "", "skimming"],
    )
    plan = _plan(
        tmp_path,
        source,
        columns={"fraud_scenario": "scenario"},
        extra_columns={
            "lat": "lat",
            "zip": {"column": "zip", "type": "string"},
            "online": {"column": "online", "type": "bool"},
        },
    )
    assert plan.extra_columns["lat"] == ("lat", "float64")
    mapped = _map(plan)
    assert mapped["lat"].tolist()[0] == 36.07 and pd.isna(mapped["lat"][1])
    assert mapped["zip"].tolist()[:2] == ["02134", "28654"]  # leading zero kept
    assert mapped["online"].tolist()[:2] == [True, False] and pd.isna(mapped["online"][2])
    assert mapped["fraud_scenario"].tolist()[:2] == [None, None]
    assert mapped["quarantine_reason"].isna().all()  # carried columns never quarantine


# -- a labels file --------------------------------------------------------------------------

LABELS = {
    "columns": {"transaction_id": "txn", "is_fraud": "verdict", "reported_at": "reported"},
    "timestamp": {"format": "%d/%m/%Y %H:%M", "timezone": "Europe/Paris"},
    "label": {"true_values": ["fraud"], "false_values": ["legit"]},
}


def _labels_plan(tmp_path: Path, rows: list[list], **labels) -> LabelsPlan:
    """The labels file of ``rows`` (txn, verdict, reported, channel) planned beside a
    transactions file without labels."""
    path = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["txn", "verdict", "reported", "channel"]).to_csv(path, index=False)
    spec = {**LABELS, "path": str(path), **labels}
    return _plan(tmp_path, _source(), columns={"is_fraud": None}, labels=spec).labels


def _map_labels(plan: LabelsPlan) -> pd.DataFrame:
    mapped = map_labels(pa_csv.read_csv(plan.path, **plan.csv_options()), plan)
    return mapped.to_pandas()


def test_without_is_fraud_the_transactions_are_genuine_until_a_report(tmp_path):
    spec = {**LABELS, "path": str(tmp_path / "labels.csv")}
    pd.DataFrame({"txn": ["t0"], "verdict": ["fraud"], "reported": ["03/03/2025 09:00"]}).to_csv(
        spec["path"], index=False
    )
    source = _source().drop(columns="fraud")
    plan = _plan(tmp_path, source, columns={"is_fraud": None}, labels=spec, label_delay_days=2)
    assert "is_fraud" not in plan.columns and "fraud" not in plan.source_columns
    assert plan.labels.columns == {
        "transaction_id": "txn",
        "is_fraud": "verdict",
        "reported_at": "reported",
    }
    mapped = _map(plan)
    assert mapped["quarantine_reason"].isna().all()
    assert not mapped["is_fraud"].any()  # genuine as far as known: the feed decides
    assert (mapped["label_available_at"] == pd.Timestamp("2025-03-03 10:00", tz="UTC")).all()


def test_without_is_fraud_and_without_a_labels_file_the_plan_says_what_to_set(tmp_path):
    message = r"ingest.columns.is_fraud is empty and there is no labels file: .*ingest.labels"
    with pytest.raises(ValueError, match=message):
        _plan(tmp_path, _source().drop(columns="fraud"), columns={"is_fraud": None})


def test_labels_file_rows_become_reports_and_bad_ones_are_named(tmp_path):
    rows = [
        ["t0", "FRAUD", "05/01/2019 00:30", "chargeback"],  # Paris: 4 January, 23:30 UTC
        ["t1", " legit ", "06/01/2019 12:00", None],  # no source: the configured one
        [None, "fraud", "06/01/2019 12:00", "analyst"],
        ["t2", "maybe", "06/01/2019 12:00", "analyst"],
        ["t3", "fraud", "yesterday", "analyst"],
        ["t4", None, None, "analyst"],
    ]
    columns = {**LABELS["columns"], "source": "channel"}
    plan = _labels_plan(tmp_path, rows, columns=columns, source="review")
    mapped = _map_labels(plan)

    assert list(mapped.columns) == [*FEED_COLUMNS, "quarantine_reason", "source_record"]
    assert mapped.loc[0, "reported_at"] == pd.Timestamp("2019-01-04 23:30", tz="UTC")
    assert list(mapped["is_fraud"][:2]) == [True, False]
    assert list(mapped["source"][:2]) == ["chargeback", "review"]
    assert list(mapped["quarantine_reason"]) == [
        None,
        None,
        "transaction_id: null",
        "is_fraud: not in label.true_values/false_values",
        "reported_at: not a timestamp (iso)",
        "reported_at: null; is_fraud: null",
    ]
    assert json.loads(mapped.loc[3, "source_record"])["verdict"] == "maybe"
    assert mapped.loc[:1, "source_record"].isna().all()


def test_reports_without_a_source_column_take_the_default_one(tmp_path):
    plan = _labels_plan(tmp_path, [["t0", "fraud", "05/01/2019 00:30", "x"]])
    assert "channel" not in plan.source_columns
    assert list(_map_labels(plan)["source"]) == ["labels_file"]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"colums": {}}, r"ingest.labels: unknown key\(s\) \['colums'\]"),
        (
            {"columns": {"transaction_id": "txn", "reported_at": "reported"}},
            r"ingest.labels.columns: \['is_fraud'\] must name a column of the labels file",
        ),
        (
            {"columns": {**LABELS["columns"], "is_fraud": "flag"}},
            r"ingest.labels: source column\(s\) \['flag'\] not in .*labels.csv",
        ),
        ({"path": "/nowhere/labels.csv"}, r"ingest.labels.path: /nowhere/labels.csv does not"),
        ({"path": None}, r"ingest.labels.path is empty: set it to the labels file"),
        ({"timestamp": {"unit": "minutes"}}, r"ingest.labels.timestamp.unit must be 'iso'"),
        (
            {"label": {"true_values": ["x"], "false_values": ["X"]}},
            r"ingest.labels.label: true_values and false_values share \['x'\]",
        ),
    ],
)
def test_a_labels_mapping_mistake_is_named_before_any_row_is_read(tmp_path, labels, message):
    with pytest.raises(ValueError, match=message):
        _labels_plan(tmp_path, [["t0", "fraud", "05/01/2019 00:30", "x"]], **labels)


def test_a_labels_file_that_is_not_a_table_says_which_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    spec = {**LABELS, "path": str(tmp_path / "empty.csv")}
    with pytest.raises(ValueError, match=r"ingest.labels.path: cannot read the header of .*empty"):
        _plan(tmp_path, _source(), labels=spec)
    with pytest.raises(ValueError, match=r"ingest.labels must be null \(labels inline\) or a"):
        _plan(tmp_path, _source(), labels=str(tmp_path / "empty.csv"))


def test_run_date_must_be_a_day():
    params = load_parameters(PROJECT_ROOT)["ingest"]
    params["path"] = str(PROJECT_ROOT / params["path"])
    assert plan_ingest(params | {"run_date": "2019-01-02"}).run_date == "2019-01-02"
    with pytest.raises(ValueError, match=r"ingest.run_date must be a day, YYYY-MM-DD .*'someday'"):
        plan_ingest(params | {"run_date": "someday"})
