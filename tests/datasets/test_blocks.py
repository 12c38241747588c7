"""Ray Datasets from blocks whose figures their tasks returned: as from_arrow_refs, no task."""

from __future__ import annotations

import pyarrow as pa
import pytest
import ray

from payments_ml.datasets.blocks import block_info, dataset_from_blocks

pytestmark = pytest.mark.usefixtures("ray_session")


def _blocks() -> list[pa.Table]:
    return [
        pa.table({"x": pa.array(range(k, k + 3 * k), pa.int64()), "day": [f"d{k}"] * 3 * k})
        for k in (1, 2, 3)
    ]


def test_the_dataset_equals_from_arrow_refs_and_takes_ray_datas_internals(monkeypatch):
    tables = _blocks()
    refs = [ray.put(t) for t in tables]
    expected = ray.data.from_arrow_refs(refs)

    def no_task(_refs):  # the short way must not fall back on this Ray
        raise AssertionError("dataset_from_blocks fell back to ray.data.from_arrow_refs")

    monkeypatch.setattr(ray.data, "from_arrow_refs", no_task)
    got = dataset_from_blocks(refs, [block_info(t) for t in tables])
    assert got.count() == expected.count() == 18
    assert got.schema() == expected.schema()
    assert got.size_bytes() == sum(t.nbytes for t in tables)
    assert pa.concat_tables(ray.get(got.to_arrow_refs())).equals(pa.concat_tables(tables))
    assert got.take_all() == expected.take_all()
