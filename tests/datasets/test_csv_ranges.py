"""CSV files cut into byte ranges: every row read exactly once, as pyarrow reads the file."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.fs as pa_fs
import pytest
import ray

from payments_ml.datasets import csv_ranges as cr

LOCAL = pa_fs.LocalFileSystem()


def _options(encoding: str = "utf8", skip_rows: int = 0, **convert) -> cr.CsvOptions:
    return cr.CsvOptions(
        pa_csv.ReadOptions(encoding=encoding, skip_rows=skip_rows),
        pa_csv.ParseOptions(),
        pa_csv.ConvertOptions(strings_can_be_null=True, **convert),
    )


def _rows(n: int) -> list[str]:
    # Quoted commas and quotes, empty values, non-ASCII text: a row's bytes vary.
    return [
        f'{i},"name, {i}","say ""{i}""",{"" if i % 7 == 0 else i * 1.5},café {i % 3}'
        for i in range(n)
    ]


def _whole(path, options: cr.CsvOptions) -> pa.Table:
    return pa_csv.read_csv(
        path,
        read_options=options.read_options,
        parse_options=options.parse_options,
        convert_options=options.convert_options,
    )


def _by_ranges(path, options: cr.CsvOptions, rows_per_range: int) -> tuple[list, pa.Table]:
    ranges, got, malformed = _with_malformed(path, options, rows_per_range)
    assert malformed == []
    return ranges, got


def _with_malformed(path, options: cr.CsvOptions, rows_per_range: int) -> tuple:
    ranges = cr.csv_ranges([str(path)], LOCAL, options, rows_per_range)
    tables, malformed = zip(*(cr.read_range(r, LOCAL, options) for r in ranges), strict=True)
    got = pa.concat_tables(tables, promote_options="default")
    return ranges, got, [row for rows in malformed for row in rows]


@pytest.mark.parametrize("rows_per_range", [1, 3, 17, 1000])
@pytest.mark.parametrize(
    ("newline", "last_newline", "bom"),
    [("\n", True, False), ("\r\n", True, False), ("\n", False, True), ("\r\n", False, False)],
)
def test_the_ranges_hold_every_row_once_in_file_order(
    tmp_path, rows_per_range, newline, last_newline, bom
):
    path = tmp_path / "t.csv"
    text = newline.join(["id,name,quote,amount,city", *_rows(200)])
    path.write_bytes(
        ("\ufeff" if bom else "").encode() + text.encode() + (b"\n" if last_newline else b"")
    )
    options = _options(column_types={"amount": pa.string()})
    ranges, got = _by_ranges(path, options, rows_per_range)
    assert abs(len(ranges) - 200 / rows_per_range) <= max(1, 0.05 * 200 / rows_per_range)
    assert got.equals(_whole(path, options))


def test_skipped_rows_an_encoding_and_a_row_longer_than_the_overhang(tmp_path):
    path = tmp_path / "latin1.csv"
    long = "x" * (3 * cr._OVERHANG)
    lines = [
        "exported by a bank",
        "on some day",
        "id,name,note",
        *[f"{i},Zoë {i},{long if i == 5 else i}" for i in range(40)],
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    options = _options(encoding="latin-1", skip_rows=2, column_types={"note": pa.string()})
    ranges, got = _by_ranges(path, options, 2)
    assert len(ranges) > 3 and got.equals(_whole(path, options))
    assert got["name"][0].as_py() == "Zoë 0"


@pytest.mark.parametrize("skip_rows", [0, 1])
def test_a_file_without_header_gets_the_names_pyarrow_generates(tmp_path, skip_rows):
    path = tmp_path / "no_header.csv"
    path.write_text("\n".join(["exported by a bank"] * skip_rows + _rows(50)) + "\n")
    options = cr.CsvOptions(
        pa_csv.ReadOptions(skip_rows=skip_rows, autogenerate_column_names=True),
        pa_csv.ParseOptions(),
        pa_csv.ConvertOptions(strings_can_be_null=True),
    )
    ranges, got = _by_ranges(path, options, 7)
    assert len(ranges) > 3 and got.equals(_whole(path, options))
    assert got.column_names[:2] == ["f0", "f1"] and got.num_rows == 50


@pytest.mark.parametrize("rows_per_range", [1, 4, 1000])
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_a_row_of_the_wrong_number_of_fields_is_set_aside_not_fatal(
    tmp_path, rows_per_range, suffix
):
    lines = ["id,name,quote,amount,city", *_rows(30)]
    lines[8] = "7,too,many,fields,here,and,more"
    lines[20] = "too few"
    text = ("\n".join(lines) + "\n").encode()
    path = tmp_path / f"t{suffix}"
    path.write_bytes(gzip.compress(text) if suffix.endswith(".gz") else text)
    options = _options()
    ranges, got, malformed = _with_malformed(path, options, rows_per_range)
    split = rows_per_range < 10 and not suffix.endswith(".gz")
    assert got.num_rows == 28 and (len(ranges) > 3) == split
    expected = pa_csv.read_csv(
        pa.BufferReader(text),
        parse_options=pa_csv.ParseOptions(invalid_row_handler=lambda row: "skip"),
        convert_options=options.convert_options,
    )
    assert got.equals(expected)
    assert malformed == [
        ("7,too,many,fields,here,and,more", "expected 5 fields, got 7"),
        ("too few", "expected 5 fields, got 1"),
    ]


def test_a_header_only_file_gives_no_rows_and_unsplittable_files_are_read_whole(tmp_path):
    header_only = tmp_path / "empty.csv"
    header_only.write_text("id,name\n")
    ranges, got = _by_ranges(header_only, _options(), 10)
    assert got.num_rows == 0 and got.column_names == ["id", "name"]

    packed = tmp_path / "t.csv.gz"
    packed.write_bytes(
        gzip.compress(("id,name\n" + "\n".join(f"{i},n{i}" for i in range(50))).encode())
    )
    utf16 = tmp_path / "t16.csv"
    utf16.write_bytes(("id,name\n" + "\n".join(f"{i},n{i}" for i in range(50))).encode("utf-16"))
    for path, options in ((packed, _options()), (utf16, _options(encoding="utf-16"))):
        ranges, got = _by_ranges(path, options, 5)
        assert [r.whole for r in ranges] == [True] and got.num_rows == 50
        assert got["name"][49].as_py() == "n49"


def _upper(table: pa.Table, column: str, malformed: list) -> pa.Table:
    assert malformed == []
    return table.set_column(
        table.schema.get_field_index(column), column, pc.utf8_upper(table[column])
    )


def test_each_task_maps_its_range_and_counts_what_it_read(ray_session, tmp_path):
    paths = []
    for k in range(2):  # a folder of two files: ranges of both
        path = tmp_path / f"part-{k}.csv"
        path.write_text("id,name\n" + "\n".join(f"{k}{i},n{i}" for i in range(30)) + "\n")
        paths.append(str(path))
    options = _options(column_types={"id": pa.string()})
    ranges = cr.csv_ranges(paths, LOCAL, options, 8)
    refs = cr.map_csv_ranges(ranges, LOCAL, options, _upper, column="name")
    tables = ray.get([t for t, _ in refs])
    assert sum(ray.get([n for _, n in refs])) == 60 and len(ranges) == 8
    got = pa.concat_tables(tables)
    assert got["id"].to_pylist() == [f"{k}{i}" for k in range(2) for i in range(30)]
    assert set(got["name"].to_pylist()) == {f"N{i}" for i in range(30)}
