"""Map an external transactions table onto the contract, row problems named, never raised.

:func:`plan_ingest` turns ``parameters_ingest.yml`` into an :class:`IngestPlan` checked
against the source's header; :func:`map_table` maps one batch of source rows onto the
contract's columns. A value that cannot be mapped (no id, an unparseable timestamp, an
unknown label) does not stop the run: the row keeps going with ``quarantine_reason``
set (``column: check``) and the raw source values in ``source_record``.

A labels file (``ingest.labels``, a :class:`LabelsPlan`) is read and checked the same
way and :func:`map_labels` maps its rows onto the labels feed's reports
(:data:`payments_ml.labels.feed.FEED_SCHEMA`).

With ``run_date`` (``ingest.run_date``; the daily run's ``run_date``) the file is one
night's: a transaction dated on another day, or a report that arrived on another day, is
quarantined under :data:`OTHER_DAY` (``event_timestamp: not on run_date 2025-06-11``),
and every row of the file, quarantined or not, is filed under that night.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Sequence
from typing import Any, ClassVar

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as pa_ds
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq

from payments_ml.config import absolute_path
from payments_ml.contracts import ARROW_TYPES, CONTRACT_COLUMNS, QUARANTINE_REASON
from payments_ml.datasets.csv_ranges import COMPRESSED, MalformedRow, skip_malformed
from payments_ml.labels.feed import FEED_COLUMNS, FEED_SCHEMA

SOURCE_RECORD = "source_record"
NO_DATE = "unknown"  # event_date of quarantined rows whose timestamp did not map
OTHER_DAY = "not on run_date"  # the check of a night's rows dated on another day
ID_COLUMNS = ("customer_id", "card_id", "merchant_id")
REQUIRED = ("transaction_id", "customer_id", "merchant_id", "amount", "is_fraud")
OPTIONAL = ("card_id", "label_available_at", "fraud_scenario", "event_timestamp")
DEFAULT_REPORT_SOURCE = "labels_file"  # `source` of reports when the labels file has none
# Rows of a labels file, mapped: the feed's columns, then why a row did not map.
LABELS_FILE_SCHEMA = FEED_SCHEMA.append(pa.field(QUARANTINE_REASON, pa.string())).append(
    pa.field(SOURCE_RECORD, pa.string())
)
# Nanoseconds per unit of numeric timestamps (offsets from `origin`, else from the epoch).
TIMESTAMP_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "h": 3_600 * 10**9, "d": 86_400 * 10**9}
EXTRA_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("ns", tz="UTC"),
}
_KEYS = {
    "path",
    "format",
    "fs_args",
    "csv",
    "columns",
    "timestamp",
    "ids",
    "label",
    "label_delay_days",
    "extra_columns",
    "catalogues",
    "partitions",
    "batch_rows",
    "labels",
    "run_date",
    "quarantine",
    "alerts_path",
}
_LABELS_KEYS = {"path", "format", "fs_args", "csv", "columns", "timestamp", "label", "source"}
_CSV_KEYS = {"delimiter", "quote_char", "escape_char", "encoding", "skip_rows", "null_values"}
_TIMESTAMP_KEYS = {"column", "time_column", "unit", "origin", "format", "timezone"}
_CATALOGUES = ("customers", "cards", "merchants")
_CSV_SUFFIXES = tuple(f"{s}{c}" for s in (".csv", ".tsv", ".txt") for c in ("", *COMPRESSED))
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_INT64_MAX = 2**63 - 1
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_TRUE = ("true", "t", "1", "yes", "y")  # carried bool columns
_NOT_A_LABEL = "is_fraud: not in label.true_values/false_values"
_FALSE = ("false", "f", "0", "no", "n")


@dataclasses.dataclass(frozen=True)
class SourcePlan:
    """A file (or folder of files) to read and map: the transactions or the labels file.

    Attributes:
        path: The source: a file or a folder of files; local paths are absolute.
        format: ``csv`` or ``parquet``.
        columns: Output column -> source column, for the columns the source provides
            (the time column included).
        timestamp: ``unit``, ``origin``, ``format`` and ``timezone`` of the timestamps.
        true_values: Label values meaning fraud (lower case).
        false_values: Label values meaning genuine (lower case).
        csv: Reading options of CSV sources.
        fs_args: fsspec filesystem arguments (credentials, endpoint).
        batch_rows: Rows mapped per Ray task (the reader's blocks are bundled up to it).
        run_date: ``YYYY-MM-DD``: the file is that night's (rows of other days are
            quarantined); ``None``: the file is the whole history.
    """

    where: ClassVar[str] = "ingest"  # the parameters' key, named in messages

    path: str
    format: str
    columns: dict[str, str]
    timestamp: dict[str, Any]
    true_values: tuple[str, ...]
    false_values: tuple[str, ...]
    csv: dict[str, Any]
    fs_args: dict[str, Any]
    batch_rows: int
    run_date: str | None = None

    @property
    def source_columns(self) -> list[str]:
        """Source columns to read, each once, in mapping order."""
        return list(dict.fromkeys([*self.columns.values(), *self.time_of_day_columns]))

    @property
    def time_of_day_columns(self) -> list[str]:
        """``timestamp.time_column``, when the date and the time of day are two columns."""
        column = self.timestamp.get("time_column")
        return [column] if column else []

    def filesystem(self) -> pa_fs.FileSystem | None:
        """A pyarrow filesystem for non-local sources (``None``: the local one)."""
        protocol, _ = fsspec.core.split_protocol(self.path)
        if protocol in (None, "file", "local"):
            return None
        fs = fsspec.filesystem(protocol, **self.fs_args)
        return pa_fs.PyFileSystem(pa_fs.FSSpecHandler(fs))

    def csv_options(self, infer: bool = False) -> dict[str, Any]:
        """pyarrow CSV options: every mapped column read as text (``infer``: types guessed)."""
        read = pa_csv.ReadOptions(
            encoding=self.csv.get("encoding", "utf8"),
            skip_rows=int(self.csv.get("skip_rows", 0)),
        )
        parse = pa_csv.ParseOptions(
            delimiter=self.csv.get("delimiter", ","),
            quote_char=self.csv.get("quote_char", '"'),
            escape_char=self.csv.get("escape_char", False),
        )
        null_values = self.csv.get("null_values")
        convert_args: dict[str, Any] = {"strings_can_be_null": True}
        if null_values is not None:
            convert_args["null_values"] = [str(v) for v in null_values]
        if not infer:
            convert_args["include_columns"] = self.source_columns
            convert_args["column_types"] = {c: pa.string() for c in self.source_columns}
        return {
            "read_options": read,
            "parse_options": parse,
            "convert_options": pa_csv.ConvertOptions(**convert_args),
        }


@dataclasses.dataclass(frozen=True)
class LabelsPlan(SourcePlan):
    """How to read a labels file and map it onto the feed's reports (``ingest.labels``).

    ``columns`` maps ``transaction_id``, ``is_fraud``, ``reported_at`` and, when the file
    has one, ``source``; ``source`` is the reports' source otherwise.
    """

    where: ClassVar[str] = "ingest.labels"

    source: str = DEFAULT_REPORT_SOURCE


@dataclasses.dataclass(frozen=True)
class IngestPlan(SourcePlan):
    """How to read the source and map it onto the contract; built by :func:`plan_ingest`.

    The attributes of :class:`SourcePlan` (``columns``: contract column -> source column,
    ``event_timestamp`` included; ``card_id`` absent means "the customer's id"; no
    ``is_fraud`` means "genuine unless the labels file says otherwise"), and:

    Attributes:
        ids: ``int`` (the value is an integer) or ``hash`` per id column.
        label_delay_days: Delay until a label is known, where the source has none.
        extra_columns: Output name -> (source column, type) of the columns carried along.
        catalogues: Carried columns that describe a customer, card or merchant.
        partitions: Partitions of the contract check; ``None``: 2 per cluster CPU.
        labels: The labels file, if there is one (``ingest.labels``).
        quarantine_shares: Quarantined share of the rows above which the ingest warns
            (and raises an alert), and above which it fails (``ingest.quarantine``).
        alerts_path: The alert log those alerts go to (``ingest.alerts_path``).
    """

    ids: dict[str, str] = dataclasses.field(default_factory=dict)
    label_delay_days: float = 7.0
    extra_columns: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    catalogues: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    partitions: int | None = None
    labels: LabelsPlan | None = None
    quarantine_shares: tuple[float, float] = (0.01, 0.10)
    alerts_path: str | None = None

    @property
    def source_columns(self) -> list[str]:
        """Source columns to read, each once, in mapping order."""
        wanted = [
            *self.columns.values(),
            *self.time_of_day_columns,
            *(src for src, _ in self.extra_columns.values()),
        ]
        return list(dict.fromkeys(wanted))

    @property
    def source_id_columns(self) -> list[str]:
        """Output columns keeping the source's text of hashed ids (``source_<id column>``)."""
        return [f"source_{name}" for name in ID_COLUMNS if name in self.hashed_ids]

    @property
    def hashed_ids(self) -> list[str]:
        """Id columns mapped through the hash, among those the source provides."""
        return [n for n in ID_COLUMNS if n in self.columns and self.ids[n] == "hash"]

    def arrow_schema(self) -> pa.Schema:
        """Schema of mapped rows: contract, event_date, carried columns, reason, record."""
        fields = [pa.field(name, ARROW_TYPES[name]) for name in CONTRACT_COLUMNS]
        fields.append(pa.field("event_date", pa.string()))
        fields += [pa.field(n, EXTRA_TYPES[t]) for n, (_, t) in self.extra_columns.items()]
        fields += [pa.field(name, pa.string()) for name in self.source_id_columns]
        fields += [pa.field(QUARANTINE_REASON, pa.string()), pa.field(SOURCE_RECORD, pa.string())]
        return pa.schema(fields)


def plan_ingest(params: dict[str, Any]) -> IngestPlan:
    """Check the mapping in ``parameters_ingest.yml`` against the source's header.

    Everything a typo can break is checked here, before any row is read: unknown keys,
    missing required columns, source columns absent from the file, unknown units or
    types. Types of carried columns left as ``auto`` come from the source (Parquet) or
    from its first rows (CSV).

    Args:
        params: The ``ingest`` section of the parameters.

    Returns:
        The plan that :func:`map_table` and the ingest nodes follow.

    Raises:
        ValueError: When the parameters or the source do not fit; the message names the
            key and what to write instead.
    """
    _check_keys(params, _KEYS, "ingest")
    path, csv, fs_args = _file_spec(params, "ingest", {}, "the CSV or Parquet file to ingest")
    partitions, batch_rows = _sizes(params)
    run_date = _run_date(params.get("run_date"))
    labels = _labels_plan(params.get("labels"), fs_args, batch_rows, run_date)
    timestamp, ts_column = _timestamp_spec(params, "ingest", "event_timestamp")
    columns = _columns(params.get("columns") or {}, ts_column, labelled=labels is not None)
    ids = _id_types(params.get("ids") or {})
    true_values, false_values = _label_values_of(params, "ingest")
    delay = float(params.get("label_delay_days", 7))
    if delay < 0:
        raise ValueError(f"ingest.label_delay_days must be >= 0, got {delay}")
    plan = IngestPlan(
        path=path,
        format="",
        columns=columns,
        timestamp=timestamp,
        ids=ids,
        true_values=true_values,
        false_values=false_values,
        label_delay_days=delay,
        csv=csv,
        fs_args=fs_args,
        partitions=partitions,
        batch_rows=batch_rows,
        run_date=run_date,
        labels=labels,
        quarantine_shares=_quarantine_shares(params.get("quarantine")),
        alerts_path=params.get("alerts_path"),
    )
    return _with_source(plan, params)


def _quarantine_shares(section: dict[str, Any] | None) -> tuple[float, float]:
    """``ingest.quarantine``'s (warn_share, fail_share), checked: 0 <= warn <= fail <= 1."""
    section = dict(section or {})
    _check_keys(section, {"warn_share", "fail_share"}, "ingest.quarantine")
    warn, fail = float(section.get("warn_share", 0.01)), float(section.get("fail_share", 0.10))
    if not 0 <= warn <= fail <= 1:
        raise ValueError(
            f"ingest.quarantine: need 0 <= warn_share <= fail_share <= 1, got "
            f"warn_share {warn} and fail_share {fail}"
        )
    return warn, fail


def _run_date(value: Any) -> str | None:
    """``ingest.run_date`` as ``YYYY-MM-DD`` (None: no night, the whole history)."""
    if value is None or str(value) == "":
        return None
    try:
        return datetime.date.fromisoformat(str(value)).isoformat()
    except ValueError as err:
        raise ValueError(
            f"ingest.run_date must be a day, YYYY-MM-DD (or null: the whole file), got {value!r}"
        ) from err


def _file_spec(
    params: dict[str, Any], where: str, fs_args: dict[str, Any], what: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``path`` (absolute when local), ``csv`` options and ``fs_args`` (default: the
    given ones) of a source's parameters, checked."""
    path = params.get("path")
    if not path:
        raise ValueError(f"{where}.path is empty: set it to {what}")
    path = absolute_path(str(path))
    csv = dict(params.get("csv") or {})
    _check_keys(csv, _CSV_KEYS, f"{where}.csv")
    if ".tsv" in path.lower():
        csv.setdefault("delimiter", "\t")
    return path, csv, dict(params.get("fs_args") or fs_args)


def _with_source(plan: IngestPlan, params: dict[str, Any]) -> IngestPlan:
    """The plan completed from the source itself: its format, carried columns' types,
    and a check that every column the mapping names is there."""
    plan = dataclasses.replace(plan, format=_source_format(plan, params.get("format")))
    schema = _source_schema(plan)
    extras = _extra_columns(params.get("extra_columns") or {}, schema, plan)
    catalogues = _catalogue_columns(params.get("catalogues") or {}, extras)
    plan = dataclasses.replace(plan, extra_columns=extras, catalogues=catalogues)
    _check_source_columns(plan, schema, "ingest.columns / .timestamp.column / .extra_columns")
    return plan


def _labels_plan(
    params: dict[str, Any] | None, fs_args: dict[str, Any], batch_rows: int, run_date: str | None
) -> LabelsPlan | None:
    """``ingest.labels`` checked against the labels file's header (None: no labels file)."""
    if params is None:
        return None
    where = LabelsPlan.where
    if not isinstance(params, dict):
        raise ValueError(
            f"{where} must be null (labels inline) or a mapping with path and columns, "
            f"got {params!r}"
        )
    _check_keys(params, _LABELS_KEYS, where)
    what = f"the labels file (CSV or Parquet), or set {where} to null"
    path, csv, fs_args = _file_spec(params, where, fs_args, what)
    timestamp, ts_column = _timestamp_spec(params, where, "reported_at")
    true_values, false_values = _label_values_of(params, where)
    plan = LabelsPlan(
        path=path,
        format="",
        columns=_report_columns(params.get("columns") or {}, ts_column),
        timestamp=timestamp,
        true_values=true_values,
        false_values=false_values,
        csv=csv,
        fs_args=fs_args,
        batch_rows=batch_rows,
        run_date=run_date,
        source=str(params.get("source") or DEFAULT_REPORT_SOURCE),
    )
    plan = dataclasses.replace(plan, format=_source_format(plan, params.get("format")))
    _check_source_columns(plan, _source_schema(plan), f"{where}.columns / .timestamp.column")
    return plan


def _check_source_columns(plan: SourcePlan, schema: pa.Schema, keys: str) -> None:
    missing = [c for c in plan.source_columns if c not in schema.names]
    if missing:
        raise ValueError(
            f"{plan.where}: source column(s) {missing} not in {plan.path}; it has "
            f"{schema.names}. Fix {keys}.{_delimiter_hint(plan, schema)}"
        )
    _check_every_file(plan)


_DELIMITERS = {"|": "'|'", ";": "';'", "\t": "'\\t'"}


def _delimiter_hint(plan: SourcePlan, schema: pa.Schema) -> str:
    """When a CSV header reads as one column holding another delimiter, say which."""
    if plan.format != "csv" or len(schema.names) != 1:
        return ""
    for delimiter, spelt in _DELIMITERS.items():
        if delimiter in schema.names[0] and delimiter != plan.csv.get("delimiter", ","):
            return (
                f" The header reads as one column holding {spelt}: the file looks "
                f"{spelt}-delimited; set {plan.where}.csv.delimiter: {spelt}"
            )
    return ""


def _check_every_file(plan: SourcePlan) -> None:
    """A folder's files must all hold the mapped columns (the first one was checked): a
    file of another layout is named here, not met by a reader task halfway through."""
    files = source_files(plan) or []
    wrong = {}
    for path in files[1:]:
        names = _file_schema(plan, path).names
        missing = [c for c in plan.source_columns if c not in names]
        if missing:
            wrong[path] = missing
    if wrong:
        listed = "; ".join(f"{path} lacks {missing}" for path, missing in list(wrong.items())[:5])
        more = f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else ""
        raise ValueError(
            f"{plan.where}.path: {len(wrong)} of the {len(files)} files in {plan.path} have "
            f"another layout: {listed}{more}. Keep one layout per folder, or point "
            f"{plan.where}.path at one file."
        )


def _label_values_of(params: dict[str, Any], where: str) -> tuple[list[str], list[str]]:
    """``<where>.label``'s true and false values (lower-cased), which must not overlap."""
    label = dict(params.get("label") or {})
    _check_keys(label, {"true_values", "false_values"}, f"{where}.label")
    true_values = _label_values(label.get("true_values", ["1", "true", "t", "yes", "y"]))
    false_values = _label_values(label.get("false_values", ["0", "false", "f", "no", "n"]))
    if set(true_values) & set(false_values):
        raise ValueError(
            f"{where}.label: true_values and false_values share "
            f"{sorted(set(true_values) & set(false_values))}; a value can mean only one"
        )
    return true_values, false_values


def _sizes(params: dict[str, Any]) -> tuple[int | None, int]:
    """``ingest.partitions`` (None: 2 per CPU) and ``ingest.batch_rows``, checked."""
    partitions = params.get("partitions")
    if partitions is not None and int(partitions) < 1:
        raise ValueError(f"ingest.partitions must be >= 1 or null, got {partitions}")
    batch_rows = int(params.get("batch_rows") or 100_000)
    if batch_rows < 1:
        raise ValueError(f"ingest.batch_rows must be >= 1, got {batch_rows}")
    return None if partitions is None else int(partitions), batch_rows


def map_table(
    source: pa.Table, plan: IngestPlan, malformed: Sequence[MalformedRow] = ()
) -> pa.Table:
    """Map source rows onto the contract's columns, naming every value that does not map.

    Works on Arrow compute kernels: a CSV source arrives as text and is parsed here,
    column by column, never row by row.

    Args:
        source: Rows of the source with (at least) ``plan.source_columns``, any types.
        plan: From :func:`plan_ingest`.
        malformed: CSV rows that did not split into the header's fields (their text and
            what was wrong): each becomes a row after the others, quarantined
            (:func:`with_malformed`).

    Returns:
        One row per source row, in order, with the schema ``plan.arrow_schema()``.
        Rows that mapped have ``quarantine_reason`` null (the contract's checks come
        later); the others name each failed check and keep their raw values, as JSON,
        in ``source_record``.
    """
    col = plan.columns
    tx = _text(source[col["transaction_id"]])
    ts, missing, bad = _timestamps(_time_text(source, plan, "event_timestamp"), plan.timestamp)
    out: dict[str, pa.Array] = {"transaction_id": tx, "event_timestamp": ts}
    problems: list[tuple[np.ndarray, str]] = [
        (_nulls(tx), "transaction_id: null"),
        (missing, "event_timestamp: null"),
        (bad, f"event_timestamp: not a timestamp ({plan.timestamp['unit']})"),
        (_other_days(ts, plan.run_date), f"event_timestamp: {OTHER_DAY} {plan.run_date}"),
    ]
    # Problems in the contract's column order: a row's reasons read the same every time.
    for columns, found in (_map_ids(source, plan), _map_amount_and_labels(source, plan, ts)):
        out.update(columns)
        problems += found
    if "fraud_scenario" in col:
        scenario = _text(source[col["fraud_scenario"]])
        empty = pc.equal(pc.utf8_trim_whitespace(scenario), "")
        out["fraud_scenario"] = pc.if_else(empty, pa.scalar(None, pa.string()), scenario)
    else:
        out["fraud_scenario"] = pa.nulls(len(source), pa.string())
    # The quarantine's partition of rows without a time (a null would be Hive's
    # __HIVE_DEFAULT_PARTITION__, which pandas cannot read back with the other days); a
    # night's rows all belong to the night, whatever their time.
    if plan.run_date is None:
        out["event_date"] = pc.coalesce(utc_dates(ts), pa.scalar(NO_DATE, pa.string()))
    else:
        out["event_date"] = pa.array(np.full(len(source), plan.run_date, dtype=object))
    for name, (src, kind) in plan.extra_columns.items():
        out[name] = _convert(source[src], kind)
    reasons, failed = _join_reasons(problems, len(source))
    out[QUARANTINE_REASON] = reasons
    out[SOURCE_RECORD] = _source_records(source, plan.source_columns, failed)
    schema = plan.arrow_schema()
    table = pa.table([out[f.name].cast(f.type) for f in schema], schema=schema)
    day = {"event_date": plan.run_date or NO_DATE}  # the quarantine's partition
    return with_malformed(table, malformed, day)


_Mapped = tuple[dict[str, pa.Array], list[tuple[np.ndarray, str]]]  # columns, problems


def _map_ids(source: pa.Table, plan: IngestPlan) -> _Mapped:
    """The id columns (integers, or hashed text with the text kept as ``source_<id>``);
    without a card column, a customer's card is the customer's id."""
    col = plan.columns
    out, problems = {}, []
    for name in ID_COLUMNS:
        if name not in col:
            continue
        if plan.ids[name] == "hash":
            text = _text(source[col[name]])
            out[name], out[f"source_{name}"] = hash_ids(text), text
            missing, bad = _nulls(text), np.zeros(len(text), dtype=bool)
        else:
            out[name], missing, bad = _integers(source[col[name]])
        problems += [(missing, f"{name}: null"), (bad, f"{name}: not an int64 integer")]
    if "card_id" not in col:
        out["card_id"] = out["customer_id"]
    return out, problems


def _map_amount_and_labels(source: pa.Table, plan: IngestPlan, ts: pa.Array) -> _Mapped:
    """``amount``, ``is_fraud`` (false without a label column: the labels file decides) and
    ``label_available_at`` (the source's, or the event time plus the label delay; a row
    without a label time, never reported, is final after the delay)."""
    col = plan.columns
    out, problems = {}, []
    out["amount"], missing, bad = _numbers(source[col["amount"]])
    problems += [(missing, "amount: null"), (bad, "amount: not a number")]
    if "is_fraud" in col:
        out["is_fraud"], missing, bad = _labels(source[col["is_fraud"]], plan)
        problems += [(missing, "is_fraud: null"), (bad, _NOT_A_LABEL)]
    else:  # the labels file decides: genuine as far as anyone knows, until a report
        out["is_fraud"] = pa.array(np.zeros(len(source), dtype=bool))
    by_default = pc.add(ts, pa.scalar(_delay_ns(plan), pa.duration("ns")))
    if "label_available_at" in col:
        label_at, _, bad = _timestamps(source[col["label_available_at"]], plan.timestamp)
        out["label_available_at"] = pc.coalesce(label_at, by_default)
        problems.append((bad, f"label_available_at: not a timestamp ({plan.timestamp['unit']})"))
    else:
        out["label_available_at"] = by_default
    return out, problems


def map_labels(
    source: pa.Table, plan: LabelsPlan, malformed: Sequence[MalformedRow] = ()
) -> pa.Table:
    """Map rows of a labels file onto the feed's reports, naming every value that does not map.

    Args:
        source: Rows of the labels file with (at least) ``plan.source_columns``.
        plan: ``IngestPlan.labels``, from :func:`plan_ingest`.

    Returns:
        One row per source row, in order, with the schema :data:`LABELS_FILE_SCHEMA`:
        the feed's columns, and for a row that did not map (no id, no or an unparseable
        time, an unknown verdict) each failed check in ``quarantine_reason`` and its raw
        values, as JSON, in ``source_record``.
    """
    col = plan.columns
    tx = _text(source[col["transaction_id"]])
    at, missing_at, bad_at = _timestamps(_time_text(source, plan, "reported_at"), plan.timestamp)
    verdict, missing_verdict, bad_verdict = _labels(source[col["is_fraud"]], plan)
    given = _text(source[col["source"]]) if "source" in col else pa.nulls(len(source), pa.string())
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(given), ""), True)
    origin = pc.if_else(blank, pa.scalar(plan.source, pa.string()), given)
    reasons, failed = _join_reasons(
        [
            (_nulls(tx), "transaction_id: null"),
            (missing_at, "reported_at: null"),
            (bad_at, f"reported_at: not a timestamp ({plan.timestamp['unit']})"),
            (_other_days(at, plan.run_date), f"reported_at: {OTHER_DAY} {plan.run_date}"),
            (missing_verdict, "is_fraud: null"),
            (bad_verdict, _NOT_A_LABEL),
        ],
        len(source),
    )
    record = _source_records(source, plan.source_columns, failed)
    columns = [tx, verdict, at, origin, reasons, record]
    table = pa.table(
        [c.cast(f.type) for c, f in zip(columns, LABELS_FILE_SCHEMA, strict=True)],
        schema=LABELS_FILE_SCHEMA,
    )
    return with_malformed(table, malformed)


MALFORMED = "csv row"  # the check a malformed row fails: "csv row: expected 22 fields, got 23"


def with_malformed(
    table: pa.Table, rows: Sequence[MalformedRow], values: dict[str, str] | None = None
) -> pa.Table:
    """``table`` and, after its rows, a quarantine row of its schema for each CSV row that
    did not split into fields: it names what was wrong in ``quarantine_reason`` and keeps
    its text in ``source_record`` (as JSON: ``{"line": ...}``); the other columns are
    null, or ``values``."""
    if not rows:
        return table
    schema, n, values = table.schema, len(rows), values or {}
    columns = {
        QUARANTINE_REASON: pa.array([f"{MALFORMED}: {found}" for _, found in rows], pa.string()),
        SOURCE_RECORD: pa.array([json.dumps({"line": text}) for text, _ in rows], pa.string()),
    } | {name: pa.array([value] * n, pa.string()) for name, value in values.items()}
    arrays = [columns[f.name] if f.name in columns else pa.nulls(n) for f in schema]
    malformed = pa.table(
        [a.cast(f.type) for a, f in zip(arrays, schema, strict=True)], schema=schema
    )
    return pa.concat_tables([table, malformed])


def hash_ids(text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Stable non-negative int64 ids of texts: BLAKE2b (8-byte digest) >> 1; nulls stay null.

    The same text gives the same id in any process, file or run, so ids need no global
    pass over the data and stay the same across files ingested at different times.
    Each distinct text is hashed once.
    """
    encoded = _array(text).dictionary_encode()
    uniques = encoded.dictionary.to_pylist()
    digests = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "big") >> 1
            for u in uniques
        ),
        dtype=np.int64,
        count=len(uniques),
    )
    return pa.array(digests, pa.int64()).take(encoded.indices)


def utc_dates(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``YYYY-MM-DD`` of UTC timestamps (null stays null)."""
    return pc.cast(pc.cast(_array(ts), pa.date32()), pa.string())


def _other_days(ts: pa.Array, run_date: str | None) -> np.ndarray:
    """Rows with a time on another UTC day than ``run_date`` (none without a run_date)."""
    if run_date is None:
        return np.zeros(len(ts), dtype=bool)
    other = pc.not_equal(utc_dates(ts), pa.scalar(run_date, pa.string()))
    return pc.fill_null(other, False).to_numpy(zero_copy_only=False)


# -- plan ---------------------------------------------------------------------------------


def _check_keys(section: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")


def _timestamp_spec(
    params: dict[str, Any], where: str, time_column: str
) -> tuple[dict[str, Any], str]:
    """``<where>.timestamp`` checked, and the source column of ``time_column`` (named there
    or in ``<where>.columns``)."""
    spec = dict(params.get("timestamp") or {})
    _check_keys(spec, _TIMESTAMP_KEYS, f"{where}.timestamp")
    alias = (params.get("columns") or {}).get(time_column)
    column = spec.get("column") or alias
    if alias and spec.get("column") and alias != spec["column"]:
        raise ValueError(
            f"{where}: timestamp.column {spec['column']!r} and columns.{time_column} "
            f"{alias!r} disagree; keep one of them"
        )
    if not column:
        raise ValueError(
            f"{where}.timestamp.column is empty: name the source column of {time_column}"
        )
    unit = str(spec.get("unit", "iso"))
    if unit != "iso" and unit not in TIMESTAMP_UNITS:
        raise ValueError(
            f"{where}.timestamp.unit must be 'iso' or one of {sorted(TIMESTAMP_UNITS)}, "
            f"got {unit!r}"
        )
    timezone = str(spec.get("timezone") or "UTC")
    try:
        pd.Timestamp("2000-01-01", tz=timezone)
    except Exception as err:
        raise ValueError(
            f"{where}.timestamp.timezone: unknown time zone {timezone!r}; use an IANA name "
            "such as 'UTC' or 'Europe/Paris'"
        ) from err
    origin = spec.get("origin")
    if origin is not None:
        if unit == "iso":
            raise ValueError(
                f"{where}.timestamp.origin applies to numeric offsets: set unit to s, ms, us, "
                "h or d, or remove origin"
            )
        try:
            stamp = pd.Timestamp(str(origin))
        except ValueError as err:
            raise ValueError(
                f"{where}.timestamp.origin must be an ISO date or time, got {origin!r}"
            ) from err
        stamp = stamp.tz_localize(timezone) if stamp.tzinfo is None else stamp
        origin = stamp.tz_convert("UTC").isoformat()
    fmt = spec.get("format")
    if fmt is not None and unit != "iso":
        raise ValueError(f"{where}.timestamp.format (a strptime pattern) needs unit: iso")
    time_column = spec.get("time_column")
    if time_column is not None and unit != "iso":
        raise ValueError(
            f"{where}.timestamp.time_column (the time of day, beside the date in column) "
            "needs unit: iso"
        )
    checked = {"unit": unit, "origin": origin, "format": fmt, "timezone": timezone}
    return checked | {"time_column": time_column}, str(column)


def _columns(columns: dict[str, Any], ts_column: str, labelled: bool) -> dict[str, str]:
    """Contract column -> source column; ``is_fraud`` may be left out when a labels file
    (``labelled``) gives the labels."""
    known = set(REQUIRED) | set(OPTIONAL)
    _check_keys(columns, known, "ingest.columns")
    if not columns.get("is_fraud") and not labelled:
        raise ValueError(
            "ingest.columns.is_fraud is empty and there is no labels file: name the source "
            "column of the fraud label, or configure the labels file under ingest.labels"
        )
    missing = [name for name in REQUIRED if name != "is_fraud" and not columns.get(name)]
    if missing:
        raise ValueError(
            f"ingest.columns: {missing} must name a source column (contract name: source "
            "column); only card_id, label_available_at and fraud_scenario may be null"
        )
    if columns.get("fraud_scenario") and not columns.get("is_fraud"):
        raise ValueError(
            "ingest.columns.fraud_scenario needs ingest.columns.is_fraud (a scenario only "
            "describes a fraud row); set fraud_scenario to null"
        )
    mapped = {name: str(src) for name, src in columns.items() if src}
    mapped["event_timestamp"] = ts_column
    return mapped


def _report_columns(columns: dict[str, Any], ts_column: str) -> dict[str, str]:
    """Feed column -> column of the labels file; ``source`` may be left out."""
    _check_keys(columns, set(FEED_COLUMNS), "ingest.labels.columns")
    missing = [name for name in ("transaction_id", "is_fraud") if not columns.get(name)]
    if missing:
        raise ValueError(
            f"ingest.labels.columns: {missing} must name a column of the labels file; only "
            "source may be null (then each report's source is ingest.labels.source)"
        )
    mapped = {name: str(src) for name, src in columns.items() if src}
    mapped["reported_at"] = ts_column
    return mapped


def _id_types(ids: dict[str, Any]) -> dict[str, str]:
    _check_keys(ids, set(ID_COLUMNS), "ingest.ids")
    types = {name: str(ids.get(name) or "int") for name in ID_COLUMNS}
    for name, kind in types.items():
        if kind not in ("int", "hash"):
            raise ValueError(
                f"ingest.ids.{name} must be 'int' (the source holds integers) or 'hash' "
                f"(any text: a stable 63-bit hash), got {kind!r}"
            )
    return types


def _label_values(values: Any) -> tuple[str, ...]:
    if isinstance(values, str | int | float | bool):
        values = [values]
    return tuple(_flag_text(v) for v in values)


def _flag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _source_format(plan: SourcePlan, fmt: str | None) -> str:
    fmt = str(fmt or "auto")
    if fmt in ("csv", "parquet"):
        return fmt
    if fmt != "auto":
        raise ValueError(f"{plan.where}.format must be auto, csv or parquet, got {fmt!r}")
    name = plan.path.lower().rstrip("/")
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    fs, path = fsspec.core.url_to_fs(plan.path, **plan.fs_args)
    if fs.isdir(path):
        files = [f.lower() for f in fs.find(path)]
        if any(f.endswith(_PARQUET_SUFFIXES) for f in files):
            return "parquet"
        if any(f.endswith(_CSV_SUFFIXES) for f in files):
            return "csv"
    raise ValueError(
        f"{plan.where}.format: cannot tell the format of {plan.path} from its name; "
        f"set {plan.where}.format to csv or parquet"
    )


def source_files(plan: SourcePlan) -> list[str] | None:
    """The data files of a folder source, by suffix (``None``: the source is one file).

    Exports often hold more than data (Spark's ``_SUCCESS``, ``.crc`` files).
    """
    fs, path = fsspec.core.url_to_fs(plan.path, **plan.fs_args)
    if not fs.exists(path):
        raise ValueError(f"{plan.where}.path: {plan.path} does not exist; point it at your file")
    if not fs.isdir(path):
        return None
    suffixes = _CSV_SUFFIXES if plan.format == "csv" else _PARQUET_SUFFIXES
    files = sorted(
        f
        for f in fs.find(path)
        if f.lower().endswith(suffixes) and not f.rsplit("/", 1)[-1].startswith((".", "_"))
    )
    if not files:
        raise ValueError(
            f"{plan.where}.path: no {plan.format} files ({', '.join(suffixes)}) in {plan.path}"
        )
    protocol, _ = fsspec.core.split_protocol(plan.path)
    return [f if protocol in (None, "file", "local") else f"{protocol}://{f}" for f in files]


def _source_schema(plan: SourcePlan) -> pa.Schema:
    """Column names and (for CSV: guessed from the first rows) types of the source."""
    files = source_files(plan)
    fs, path = fsspec.core.url_to_fs(plan.path, **plan.fs_args)
    if plan.format == "parquet":
        try:
            return pa_ds.dataset(
                path,
                format="parquet",
                filesystem=pa_fs.PyFileSystem(pa_fs.FSSpecHandler(fs)),
                partitioning="hive",
            ).schema
        except pa.ArrowInvalid as err:
            raise _unreadable(plan, plan.path, err) from err
    return _file_schema(plan, files[0] if files else plan.path)


def _file_schema(plan: SourcePlan, path: str) -> pa.Schema:
    """One file's columns (CSV: types guessed from its first rows; Parquet: its footer)."""
    try:
        with fsspec.open(path, "rb", compression="infer", **plan.fs_args) as f:
            if plan.format == "parquet":
                return pq.read_schema(f)
            options = plan.csv_options(infer=True)
            # The header and the types only: a malformed row is the reading's to quarantine.
            options["parse_options"] = skip_malformed(options["parse_options"])
            return pa_csv.open_csv(f, **options).schema
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        raise _unreadable(plan, path, err) from err


def _unreadable(plan: SourcePlan, path: str, err: Exception) -> ValueError:
    return ValueError(
        f"{plan.where}.path: cannot read the header of {path} as {plan.format} ({err}); "
        f"check the file, {plan.where}.format and {plan.where}.csv"
    )


def _extra_columns(
    extras: dict[str, Any] | list[str], schema: pa.Schema, plan: IngestPlan
) -> dict[str, tuple[str, str]]:
    if isinstance(extras, list):
        extras = {name: name for name in extras}
    reserved = {*plan.arrow_schema().names, *(f"source_{n}" for n in ID_COLUMNS)}
    resolved = {}
    for name, given in extras.items():
        if name in reserved:
            raise ValueError(
                f"ingest.extra_columns: {name!r} is a column the ingest writes itself; "
                "choose another output name"
            )
        spec = {"column": given} if isinstance(given, str) else dict(given or {})
        _check_keys(spec, {"column", "type"}, f"ingest.extra_columns.{name}")
        src = str(spec.get("column") or name)
        kind = str(spec.get("type") or "auto")
        if kind == "auto":
            kind = _type_of(schema.field(src).type) if src in schema.names else "string"
        if kind not in EXTRA_TYPES:
            raise ValueError(
                f"ingest.extra_columns.{name}.type must be auto or one of "
                f"{sorted(EXTRA_TYPES)}, got {kind!r}"
            )
        resolved[str(name)] = (src, kind)
    return resolved


def _type_of(arrow_type: pa.DataType) -> str:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_integer(arrow_type):
        return "int64"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float64"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    return "string"


def _catalogue_columns(
    catalogues: dict[str, Any], extras: dict[str, tuple[str, str]]
) -> dict[str, tuple[str, ...]]:
    _check_keys(catalogues, set(_CATALOGUES), "ingest.catalogues")
    resolved = {}
    for name in _CATALOGUES:
        columns = tuple(str(c) for c in catalogues.get(name) or ())
        unknown = [c for c in columns if c not in extras]
        if unknown:
            raise ValueError(
                f"ingest.catalogues.{name}: {unknown} are not carried columns; add them to "
                f"ingest.extra_columns (carried: {sorted(extras)})"
            )
        resolved[name] = columns
    return resolved


# -- mapping ------------------------------------------------------------------------------


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values


def _nulls(values: pa.Array) -> np.ndarray:
    return pc.is_null(values).to_numpy(zero_copy_only=False)


def _delay_ns(plan: IngestPlan) -> int:
    return round(plan.label_delay_days * 86_400 * 10**9)


def _join_reasons(problems: list[tuple[np.ndarray, str]], n: int) -> tuple[pa.Array, np.ndarray]:
    """Each row's failed checks joined by ``; `` (loops over failing rows only)."""
    joined = np.full(n, None, dtype=object)
    for mask, text in problems:
        for i in np.flatnonzero(mask):
            joined[i] = text if joined[i] is None else f"{joined[i]}; {text}"
    failed = np.not_equal(joined, None)
    return pa.array(joined, pa.string()), failed


def _text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Values as text; integral floats without ``.0``, booleans as true/false."""
    values = _array(values)
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return values.cast(pa.string())
    if pa.types.is_boolean(kind):
        return pc.if_else(values, "true", "false")
    if pa.types.is_floating(kind):
        integral = pc.and_(pc.equal(values, pc.round(values)), pc.less(pc.abs(values), 2.0**53))
        whole = pc.cast(pc.if_else(integral, values, 0.0), pa.int64()).cast(pa.string())
        return pc.if_else(integral, whole, values.cast(pa.string()))
    return values.cast(pa.string())


def _numbers(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """float64 values; masks of missing values and of values that are not finite numbers."""
    values = _array(values)
    missing = _nulls(values)
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        numbers = values.cast(pa.float64())
    else:
        text = pc.utf8_trim_whitespace(_text(values))
        try:
            numbers = text.cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            ok = pc.match_substring_regex(text, _NUMBER)
            numbers = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.float64())
    finite = pc.fill_null(pc.is_finite(numbers), False).to_numpy(zero_copy_only=False)
    bad = ~missing & ~finite
    numbers = pc.if_else(pa.array(bad), pa.scalar(None, pa.float64()), numbers)
    return numbers, missing, bad


def _integers(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """int64 values (integers, integral numbers or integer text); missing and bad masks."""
    values = _array(values)
    missing = _nulls(values)
    if pa.types.is_integer(values.type):
        if values.type != pa.uint64():
            return values.cast(pa.int64()), missing, np.zeros(len(values), dtype=bool)
        values = values.cast(pa.string())
    if pa.types.is_floating(values.type):
        ok = pc.and_(pc.equal(values, pc.round(values)), pc.less(pc.abs(values), float(_INT64_MAX)))
        ints = pc.cast(pc.if_else(ok, values, pa.scalar(None, pa.float64())), pa.int64())
    else:
        text = pc.replace_substring_regex(pc.utf8_trim_whitespace(_text(values)), r"\.0*$", "")
        digits = pc.utf8_ltrim(text, characters="+-")
        ok = pc.and_(
            pc.match_substring_regex(text, r"^[+-]?\d{1,19}$"),
            pc.or_(pc.less(pc.utf8_length(digits), 19), pc.less_equal(digits, str(_INT64_MAX))),
        )
        ints = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.int64())
    bad = ~missing & ~np.asarray(pc.fill_null(ok, False).to_numpy(zero_copy_only=False))
    return ints, missing, bad


def _labels(
    values: pa.Array | pa.ChunkedArray, plan: SourcePlan
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    text = pc.utf8_lower(pc.utf8_trim_whitespace(_text(values)))
    is_true = pc.is_in(text, value_set=pa.array(plan.true_values, pa.string()))
    is_false = pc.is_in(text, value_set=pa.array(plan.false_values, pa.string()))
    known = pc.or_(is_true, is_false)
    labels = pc.if_else(known, is_true, pa.scalar(None, pa.bool_()))
    missing = _nulls(text)
    bad = ~missing & ~known.to_numpy(zero_copy_only=False)
    return labels, missing, bad


def _time_text(source: pa.Table, plan: SourcePlan, name: str) -> pa.Array | pa.ChunkedArray:
    """The source column of ``name``; with ``timestamp.time_column``, the date and the
    time of day joined by a space (``2025-03-01 10:00:00``; null when either is)."""
    values = source[plan.columns[name]]
    if not plan.time_of_day_columns:
        return values
    time_of_day = source[plan.time_of_day_columns[0]]
    return pc.binary_join_element_wise(_text(values), _text(time_of_day), " ")


def _timestamps(
    values: pa.Array | pa.ChunkedArray, spec: dict[str, Any]
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """UTC timestamps; masks of missing values and of values that do not parse."""
    values = _array(values)
    missing = _nulls(values)
    if spec["unit"] == "iso":
        stamps = _iso_timestamps(values, spec)
    else:
        stamps = _offset_timestamps(values, spec["unit"], spec.get("origin"))
    bad = _nulls(stamps) & ~missing
    return stamps, missing, bad


def _iso_timestamps(values: pa.Array, spec: dict[str, Any]) -> pa.Array:
    zone = spec["timezone"]
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        stamps = pd.Series(values.to_pandas())
    elif zone == "UTC" and not spec.get("format") and (fast := _cast_iso(values)) is not None:
        return fast
    else:
        # pandas' ISO 8601 parser: offsets, 'Z', 'T' or space, optional fractions.
        stamps = pd.to_datetime(
            pd.Series(_text(values).to_pandas()),
            format=spec.get("format") or "ISO8601",
            errors="coerce",
            utc=zone == "UTC",
        )
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = pd.to_datetime(stamps).dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    stamps = stamps.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    return pa.array(stamps, pa.timestamp("ns", tz="UTC"))


def _cast_iso(values: pa.Array) -> pa.Array | None:
    """Arrow's ISO 8601 cast (fast), when every value has an offset or none has one."""
    text = _text(values)
    for kind in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            return text.cast(kind).cast(pa.timestamp("ns", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


def _offset_timestamps(values: pa.Array, unit: str, origin: str | None) -> pa.Array:
    """Numbers of ``unit`` since ``origin`` (the epoch when null), exact to the nanosecond."""
    per_unit = TIMESTAMP_UNITS[unit]
    numbers, _, _ = _numbers(values)
    numbers = numbers.to_numpy(zero_copy_only=False)  # nulls: NaN
    start = pd.Timestamp(origin).value if origin else 0
    whole = np.floor(numbers)
    limit = (2**63 - 1 - abs(start)) // per_unit - 1
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(numbers) & (np.abs(whole) < limit)
    ns = np.zeros(len(numbers), dtype=np.int64)
    ns[ok] = (
        whole[ok].astype(np.int64) * per_unit
        + np.round((numbers[ok] - whole[ok]) * per_unit).astype(np.int64)
        + start
    )
    return pa.array(ns, pa.timestamp("ns", tz="UTC"), mask=~ok)


def _convert(values: pa.Array | pa.ChunkedArray, kind: str) -> pa.Array:
    """A carried column in its declared type; values that do not convert become null."""
    if kind == "string":
        return _text(values)
    if kind == "float64":
        return _numbers(values)[0]
    if kind == "int64":
        return _integers(values)[0]
    if kind == "bool":
        text = pc.utf8_lower(pc.utf8_trim_whitespace(_text(values)))
        is_true = pc.is_in(text, value_set=pa.array(_TRUE, pa.string()))
        known = pc.or_(is_true, pc.is_in(text, value_set=pa.array(_FALSE, pa.string())))
        return pc.if_else(known, is_true, pa.scalar(None, pa.bool_()))
    return _iso_timestamps(_array(values), {"timezone": "UTC", "format": None})


def _source_records(source: pa.Table, columns: list[str], failed: np.ndarray) -> pa.Array:
    """The raw values of rows that failed to map, as JSON (null for the other rows)."""
    records = np.full(len(failed), None, dtype=object)
    rows = np.flatnonzero(failed)
    if len(rows):
        picked = source.select(columns).take(pa.array(rows)).to_pylist()
        records[rows] = [json.dumps(r, default=str) for r in picked]
    return pa.array(records, pa.string())
