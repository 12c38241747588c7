"""CSV files read in byte ranges by Ray tasks, each range parsed with pyarrow in its task.

Ray Data reads a CSV file in one task, however large: at 1 M rows (277 MB) that task took
2.5 s warm and 6.0 s on the first run, while the rest of the cluster waited, and its
100 blocks then went through the object store to the tasks that map them. Here a file is
cut into ranges of about ``rows_per_range`` rows; each task reads its bytes, parses them
and applies the caller's function (the ingest's mapping) where the rows are, so only the
mapped table travels.

A row belongs to the range its first byte falls in: a task skips the partial row at its
start and reads past its end to finish its last row. That is exact when a newline always
ends a row, which is what pyarrow assumes too unless ``newlines_in_values`` is set; with
it set, in a compressed file or in an encoding where a newline is not the byte ``\\n``
(UTF-16), the file is read whole by one task. Each range guesses the types of columns
the convert options leave untyped from its own rows: give ``column_types`` (the ingest
reads every column as text).

A row with the wrong number of fields does not fail its range: pyarrow skips it, and the
task hands its text and what was wrong to the caller's function (``malformed``), which
decides where it goes (the ingest quarantines it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pa_fs
import ray

from payments_ml.datasets.file_tasks import SPREAD

# Suffixes pyarrow's compression="detect" decompresses: such a file cannot be cut.
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4", ".br")
_HEAD_BYTES = 1 << 20  # read to find the header's end and the bytes per row
_OVERHANG = 1 << 16  # read past a range's end to finish its last row, doubled as needed
_MALFORMED_TEXT = 2_000  # characters of a malformed row kept (the rest is cut)

# A row pyarrow could not split into the header's columns: (its text, what was wrong).
MalformedRow = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class CsvOptions:
    """pyarrow's reading options of a source (``SourcePlan.csv_options``)."""

    read_options: pa_csv.ReadOptions
    parse_options: pa_csv.ParseOptions
    convert_options: pa_csv.ConvertOptions


@dataclasses.dataclass(frozen=True)
class CsvRange:
    """Rows of ``path`` whose first byte is in ``[start, end)``; ``names``: the header's
    column names. ``whole``: the file read whole, header and skipped rows included."""

    path: str
    start: int
    end: int
    names: tuple[str, ...] = ()
    whole: bool = False


def csv_ranges(
    paths: list[str], filesystem: pa_fs.FileSystem, options: CsvOptions, rows_per_range: int
) -> list[CsvRange]:
    """Each file's data rows cut into ranges of about ``rows_per_range`` rows (estimated
    from the bytes per row of its first megabyte); at least one range per file."""
    return [r for path in paths for r in _file_ranges(path, filesystem, options, rows_per_range)]


def map_csv_ranges(
    ranges: list[CsvRange],
    filesystem: pa_fs.FileSystem,
    options: CsvOptions,
    fn: Callable[..., pa.Table],
    **kwargs: Any,
) -> list[tuple[ray.ObjectRef, ray.ObjectRef]]:
    """``fn(table, malformed=rows, **kwargs)`` on each range, read by pyarrow in its own
    task (``malformed``: the range's :data:`MalformedRow` list, usually empty).

    Returns:
        Per range: (the ref of ``fn``'s table, the ref of the number of rows read, the
        malformed ones included).
    """
    name = getattr(fn, "__name__", "map_csv_ranges")
    task = _map_range.options(num_returns=2, name=f"read_csv_{name}", scheduling_strategy=SPREAD)
    return [task.remote(r, filesystem, options, fn, kwargs) for r in ranges]


def read_range(
    rng: CsvRange, filesystem: pa_fs.FileSystem, options: CsvOptions
) -> tuple[pa.Table, list[MalformedRow]]:
    """The rows of one range as an Arrow table, and the rows pyarrow could not split into
    the columns (what a task of :func:`map_csv_ranges` hands to its function)."""
    malformed: list[MalformedRow] = []
    parse = skip_malformed(options.parse_options, malformed)
    if rng.whole:
        with filesystem.open_input_stream(rng.path, compression="detect") as f:
            table = pa_csv.read_csv(
                f,
                read_options=options.read_options,
                parse_options=parse,
                convert_options=options.convert_options,
            )
        return table, malformed
    with filesystem.open_input_file(rng.path) as f:
        data = _range_bytes(f, rng.start, rng.end)
    if not data:  # no row starts in the range (pyarrow refuses an empty text)
        return _empty(rng.names, options.convert_options), malformed
    read = options.read_options
    read_options = pa_csv.ReadOptions(
        column_names=list(rng.names), encoding=read.encoding, block_size=read.block_size
    )
    table = pa_csv.read_csv(
        pa.BufferReader(data),
        read_options=read_options,
        parse_options=parse,
        convert_options=options.convert_options,
    )
    return table, malformed


def skip_malformed(
    parse: pa_csv.ParseOptions, malformed: list[MalformedRow] | None = None
) -> pa_csv.ParseOptions:
    """``parse`` with rows of the wrong number of fields skipped and added to
    ``malformed`` (a handler the caller set is kept)."""
    malformed = [] if malformed is None else malformed
    if parse.invalid_row_handler is not None:
        return parse

    def skip(row: Any) -> str:
        text = row.text if len(row.text) <= _MALFORMED_TEXT else f"{row.text[:_MALFORMED_TEXT]}..."
        found = f"expected {row.expected_columns} fields, got {row.actual_columns}"
        malformed.append((text, found))
        return "skip"

    return pa_csv.ParseOptions(
        delimiter=parse.delimiter,
        quote_char=parse.quote_char,
        double_quote=parse.double_quote,
        escape_char=parse.escape_char,
        newlines_in_values=parse.newlines_in_values,
        ignore_empty_lines=parse.ignore_empty_lines,
        invalid_row_handler=skip,
    )


@ray.remote
def _map_range(
    rng: CsvRange, filesystem: pa_fs.FileSystem, options: CsvOptions, fn: Callable, kwargs: dict
) -> tuple[pa.Table, int]:
    table, malformed = read_range(rng, filesystem, options)
    return fn(table, malformed=malformed, **kwargs), table.num_rows + len(malformed)


def _file_ranges(
    path: str, filesystem: pa_fs.FileSystem, options: CsvOptions, rows_per_range: int
) -> list[CsvRange]:
    if not _splittable(path, options):
        return [CsvRange(path, 0, 0, whole=True)]
    size = filesystem.get_file_info(path).size
    with filesystem.open_input_file(path) as f:
        head = f.read_at(min(size, _HEAD_BYTES), 0)
    data_start = _data_start(head, options.read_options)
    if data_start is None:  # no newline in the first megabyte: one row, or \r line ends
        return [CsvRange(path, 0, 0, whole=True)]
    names = _header_names(head, data_start, options)
    rows_in_head = head.count(b"\n", data_start)
    bytes_per_row = (len(head) - data_start) / rows_in_head if rows_in_head else size
    target = max(1, int(bytes_per_row * rows_per_range))
    n = max(1, math.ceil((size - data_start) / target))
    bounds = [data_start + (size - data_start) * i // n for i in range(n + 1)]
    return [CsvRange(path, a, b, names) for a, b in zip(bounds, bounds[1:], strict=False)]


def _splittable(path: str, options: CsvOptions) -> bool:
    if path.lower().endswith(COMPRESSED) or options.parse_options.newlines_in_values:
        return False
    sample = 'a,\n"b\r'
    try:
        return sample.encode(options.read_options.encoding) == sample.encode("ascii")
    except (LookupError, UnicodeEncodeError):
        return False


def _data_start(head: bytes, read: pa_csv.ReadOptions) -> int | None:
    """The offset of the first data row: after ``skip_rows`` lines and the header line
    (none when the column names are given or generated)."""
    lines = read.skip_rows + (0 if read.column_names or read.autogenerate_column_names else 1)
    position = 0
    for _ in range(lines):
        newline = head.find(b"\n", position)
        if newline < 0:
            return None
        position = newline + 1
    return position


def _header_names(head: bytes, data_start: int, options: CsvOptions) -> tuple[str, ...]:
    """The column names every range reads with: given, generated from the first data row
    (``f0``, ``f1``, ... as pyarrow names them), or the header line's."""
    read = options.read_options
    if read.column_names:
        return tuple(read.column_names)
    if read.autogenerate_column_names:  # the first data row gives the number of columns
        end = head.find(b"\n", data_start)
        sample = head[data_start : end + 1 if end >= 0 else len(head)]
        skip = 0
    else:
        sample, skip = head[:data_start], read.skip_rows
    parsed = pa_csv.read_csv(
        pa.BufferReader(sample),
        read_options=pa_csv.ReadOptions(
            encoding=read.encoding,
            skip_rows=skip,
            autogenerate_column_names=read.autogenerate_column_names,
        ),
        parse_options=options.parse_options,
    )
    return tuple(parsed.column_names)


def _empty(names: tuple[str, ...], convert: pa_csv.ConvertOptions) -> pa.Table:
    """The columns pyarrow gives a file without rows: the included ones, typed as told
    (null otherwise)."""
    columns = convert.include_columns or names
    types = convert.column_types or {}
    return pa.schema([(c, types.get(c, pa.null())) for c in columns]).empty_table()


def _range_bytes(f: pa.NativeFile, start: int, end: int) -> bytes:
    """The bytes of the rows starting in ``[start, end)``: from the first row start at or
    after ``start`` to the newline that ends the last row starting before ``end``."""
    size = f.size()
    begin = start
    if start > 0:
        begin = _next_line(f, start - 1, size)
    if begin >= end:
        return b""
    stop = _next_line(f, end - 1, size)
    return f.read_at(stop - begin, begin)


def _next_line(f: pa.NativeFile, position: int, size: int) -> int:
    """The offset just after the first newline at or after ``position`` (the file's size
    when there is none)."""
    step = _OVERHANG
    while position < size:
        chunk = f.read_at(min(step, size - position), position)
        found = chunk.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(chunk)
        step *= 2
    return size
