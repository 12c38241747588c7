"""Online reads for the scorer, without Feast's per-request registry work.

``FeatureStore.get_online_features`` resolves the views from the registry on every call
(about 10 ms here, mostly protobuf parsing and type checks). The scorer reads the same
three views on every request, so `OnlineReader` resolves them once and calls the online
store's ``online_read`` (Feast's store interface) directly; with the packed SQLite
store it decodes the records straight into Python values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from feast import FeatureStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type

from payments_ml.feature_store.online_store import (
    PackedSqliteOnlineStore,
    _decode,
    _int64_entity_keys,
    _layout,
    provider_online_store,
)


class OnlineReader:
    """Reads whole views by int64 join key; views are resolved once, at creation.

    Args:
        store: The feature store.
        views: ``{view name: join key}``.
    """

    def __init__(self, store: FeatureStore, views: dict[str, str]) -> None:
        self.store = store
        self.config = store.config
        self.views = {name: (store.get_feature_view(name), key) for name, key in views.items()}
        self.online = provider_online_store(store)

    def view(self, name: str) -> Any:
        """The resolved FeatureView ``name``."""
        return self.views[name][0]

    def read(self, ids: dict[str, np.ndarray]) -> dict[str, list]:
        """Every feature of every view for the given ids (``{join key: ids}``); None: no row."""
        out: dict[str, list] = {}
        for view, key in self.views.values():
            out.update(self._read_view(view, key, np.asarray(ids[key], np.int64)))
        return out

    def _read_view(self, view: Any, key: str, ids: np.ndarray) -> dict[str, list]:
        names = [f.name for f in view.features]
        if isinstance(self.online, PackedSqliteOnlineStore):
            layout = _layout(view)
            keys = _int64_entity_keys(self.config, key, ids)
            found = self.online.read_records(self.config, view, list(set(keys)))
            rows = [_decode(layout, found[k][0]) if k in found else None for k in keys]
            return {n: [r[n] if r else None for r in rows] for n in names}
        protos = [
            EntityKeyProto(join_keys=[key], entity_values=[ValueProto(int64_val=int(i))])
            for i in ids
        ]
        rows = self.online.online_read(self.config, view, protos, names)
        return {
            n: [
                feast_value_type_to_python_type(values[n]) if values and n in values else None
                for _, values in rows
            ]
            for n in names
        }
