"""Model input of live requests: online rows + today's transactions + the request itself.

The same window functions built the training rows (`windows.feature_rows` splits every
customer window into the snapshot and today's part), so a request scored with the
online snapshot of its day and the customer's earlier transactions of that day gets
exactly the training value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from payments_ml.features import windows as fw
from payments_ml.features.definitions import (
    CUSTOMER_FEATURES,
    CUSTOMER_SNAPSHOT_FEATURES,
    FEATURES,
    MERCHANT_FEATURES,
)


def request_rows(
    requests: pd.DataFrame,
    online: dict[str, list],
    today: pd.DataFrame,
) -> pd.DataFrame:
    """Every model feature of each request.

    Args:
        requests: ``customer_id``, ``merchant_id``, ``event_timestamp``, ``amount``.
        online: Online values aligned with the requests: the customer snapshot columns
            and the merchant features (None where the store has no row: cold start).
        today: The customers' transactions of the day so far (stored running state and
            the other transactions of this batch); only those strictly before each
            request count.

    Returns:
        FEATURES, aligned with the requests.
    """
    event_ns = fw.to_ns(requests["event_timestamp"])
    snapshot = fw.complete_snapshot(
        pd.DataFrame({name: online[name] for name in CUSTOMER_SNAPSHOT_FEATURES})
    )
    customer = fw.customer_window_features(
        requests["customer_id"].to_numpy(np.int64), event_ns, snapshot, today
    )
    columns = {name: customer[name].to_numpy() for name in CUSTOMER_FEATURES}
    for name in MERCHANT_FEATURES:  # snapshot-only; an unknown merchant has empty windows
        columns[name] = np.nan_to_num(np.asarray(online[name], dtype=float), nan=0.0)
    request = fw.request_features(
        requests["amount"].to_numpy(float), event_ns, columns["customer_amount_avg_30d"]
    )
    columns.update({name: request[name].to_numpy() for name in request.columns})
    return pd.DataFrame({name: columns[name] for name in FEATURES})
