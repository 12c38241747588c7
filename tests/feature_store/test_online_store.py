"""The packed SQLite online store: its record format and Feast's own paths through it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from feast import FeatureView, Field
from feast.types import String

from tests.feature_store.conftest import make_repo

fs = pytest.importorskip("payments_ml.feature_store.store")
packed = pytest.importorskip("payments_ml.feature_store.online_store")


@pytest.fixture(scope="module")
def packed_repo(tmp_path_factory, snapshots):
    return make_repo(tmp_path_factory.mktemp("packed"), snapshots, "packed_sqlite")


def test_records_round_trip_values_nulls_and_arrays():
    layout = [("n", "int64"), ("x", "float64"), ("a", "int64[]"), ("b", "float64[]")]
    rows = pd.DataFrame(
        {
            "n": pd.array([-(2**62), None, 7], dtype="Int64"),
            "x": [1.5, np.nan, -0.0],
            "a": [[1, -2, 3], [], None],
            "b": [None, [0.25], [1e300, -1e-300]],
        }
    )
    decoded = [
        packed.decode_record(layout, record) for record in packed.encode_records(layout, rows)
    ]
    assert decoded == [
        {"n": -(2**62), "x": 1.5, "a": [1, -2, 3], "b": None},
        {"n": None, "x": None, "a": [], "b": [0.25]},
        {"n": 7, "x": -0.0, "a": None, "b": [1e300, -1e-300]},
    ]
    # The one-row encoder of read-modify-write updates writes the same bytes.
    dicts = [
        {"n": -(2**62), "x": 1.5, "a": [1, -2, 3], "b": None},
        {"n": None, "x": float("nan"), "a": [], "b": [0.25]},
        {"n": 7, "x": -0.0, "a": None, "b": [1e300, -1e-300]},
    ]
    assert [packed.encode_record(layout, d) for d in dicts] == packed.encode_records(layout, rows)


def test_entity_keys_are_feasts_own(packed_repo):
    """The numpy-built keys equal Feast's serialization, so Feast's reads find them."""
    from feast.infra.key_encoding_utils import serialize_entity_key  # noqa: PLC0415
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey  # noqa: PLC0415
    from feast.protos.feast.types.Value_pb2 import Value  # noqa: PLC0415

    config = packed_repo["store"].config
    ids = np.array([0, 1, -5, 2**40, 2**63 - 1], np.int64)
    keys = packed.int64_entity_keys(config, "customer_id", ids)
    assert keys == [
        serialize_entity_key(
            EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=int(v))]),
            config.entity_key_serialization_version,
        )
        for v in ids
    ]


def test_feast_materialize_writes_what_the_bulk_path_writes(packed_repo, snapshots):
    """Feast's materialize (proto rows) and our bulk write leave the same online values."""
    store = packed_repo["store"]
    latest = fs.latest_rows(snapshots["customer"], "customer_id")
    end = latest["snapshot_ts"].max().to_pydatetime() + timedelta(days=1)
    store.materialize(
        start_date=datetime(2000, 1, 1, tzinfo=UTC),
        end_date=end,
        feature_views=["customer_snapshot", "merchant_snapshot"],  # customer_today is pushed
    )
    ids = latest["customer_id"].sample(200, random_state=3).to_numpy()
    from_feast = fs.read_online(store, "customer_snapshot", "customer_id", ids)
    fs.write_online(store, store.get_feature_view("customer_snapshot"), latest)
    from_bulk = fs.read_online(store, "customer_snapshot", "customer_id", ids)
    pd.testing.assert_frame_equal(from_feast, from_bulk)
    expected = latest.set_index("customer_id").loc[ids]
    np.testing.assert_array_equal(from_bulk["tx_count_30d"], expected["tx_count_30d"])
    assert [list(v) for v in from_bulk["late_tx_ns"]] == [list(v) for v in expected["late_tx_ns"]]


def test_a_changed_view_gets_a_new_table_never_a_misread(packed_repo, snapshots):
    store = packed_repo["store"]
    view = store.get_feature_view("merchant_snapshot")
    latest = fs.latest_rows(snapshots["merchant"], "merchant_id")
    fs.write_online(store, view, latest)
    ids = latest["merchant_id"].to_numpy()[:5]
    assert (
        fs.read_online(store, "merchant_snapshot", "merchant_id", ids)["merchant_tx_count_30d"]
        .notna()
        .all()
    )

    fewer = FeatureView(
        name=view.name,
        entities=[store.get_entity("merchant")],
        ttl=view.ttl,
        schema=[f for f in view.features if f.name != "merchant_fraud_rate_1d"],
        source=view.batch_source,
    )
    store.apply([store.get_entity("merchant"), fewer])
    after = fs.read_online(store, "merchant_snapshot", "merchant_id", ids)
    assert after["merchant_tx_count_30d"].isna().all()  # recreated empty, not misread
    store.apply([view])  # leave the module's repository as it was


def test_unsupported_feature_types_are_named(packed_repo):
    view = packed_repo["store"].get_feature_view("merchant_snapshot").__copy__()
    view.features = [*view.features, Field(name="segment", dtype=String)]
    with pytest.raises(ValueError, match="feature 'segment' has type String.*'sqlite'"):
        packed.record_layout(view)
