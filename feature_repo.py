"""The project's Feast objects, for `feast apply` and `feast plan` at the project root.

`kedro run --pipelines features` applies the same objects (payments_ml.feature_store);
their source paths come from the Kedro environment feature_store.yaml was generated for
(`python -m payments_ml.feature_store yaml --env <env>`). Feast reads every module-level
entity, data source, feature view and feature service below.
"""

from pathlib import Path

from payments_ml.feature_store.repo import repo_objects

_objects = repo_objects(Path(__file__).resolve().parent)

customer = _objects["customer"]
merchant = _objects["merchant"]
customer_snapshot_fv = _objects["customer_snapshot"]
merchant_snapshot_fv = _objects["merchant_snapshot"]
customer_today_fv = _objects["customer_today"]
fraud_model_v1 = _objects["fraud_model_v1"]
