"""Model input of live requests: online rows + today's transactions + the request itself.

The training rows split every customer window the same way (`windows.feature_rows`: the
snapshot and today's part, read off the sorted history, with the same final combination
as `windows.customer_window_columns` here), so a request scored with the online snapshot
of its day and the customer's earlier transactions of that day gets exactly the training
value (a test holds both paths equal bit for bit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from payments_ml.features import windows as fw
from payments_ml.features.definitions import (
    CUSTOMER_SNAPSHOT_FEATURES,
    FEATURES,
    MERCHANT_FEATURES,
)


def request_columns(
    customer_id: np.ndarray,
    event_ns: np.ndarray,
    amount: np.ndarray,
    online: Mapping[str, Sequence],
    today: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, np.ndarray]:
    """Every model feature of each request, as arrays in FEATURES order.

    Args:
        customer_id: Customer of each request.
        event_ns: Request times (int64 ns, UTC).
        amount: Request amounts.
        online: Online values aligned with the requests: the customer snapshot columns
            and the merchant features (None where the store has no row: cold start).
        today: The customers' transactions of the day so far (stored running state and
            the other transactions of this batch) as (customer_id, int64 ns, amount);
            only those strictly before each request count.

    Returns:
        ``{feature: values}`` for every name of FEATURES, aligned with the requests.
    """
    event_ns = np.asarray(event_ns, np.int64)
    snapshot = fw.complete_snapshot_columns({n: online[n] for n in CUSTOMER_SNAPSHOT_FEATURES})
    columns = fw.customer_window_columns(customer_id, event_ns, snapshot, today)
    for name in MERCHANT_FEATURES:  # snapshot-only; an unknown merchant has empty windows
        columns[name] = np.nan_to_num(np.asarray(online[name], dtype=float), nan=0.0)
    columns.update(fw.request_feature_columns(amount, event_ns, columns["customer_amount_avg_30d"]))
    return {name: columns[name] for name in FEATURES}
