"""The fraud model: a LightGBM booster with everything serving needs, as one MLflow model.

Fitted state travels with the booster: the feature list and its order, the value of each
feature when it is missing (cold start), and the decision thresholds. The training
pipeline logs it with `log_fraud_model`; the scorer loads it with `load_fraud_model`.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

DECISIONS = ("approve", "review", "decline")
_BOOSTER_FILE = "booster.txt"
_SPEC_FILE = "spec.json"


@dataclass
class FraudModel:
    """A booster, its features, their cold-start defaults and the decision thresholds.

    Attributes:
        booster: The trained LightGBM booster.
        features: Model input columns, in the booster's order.
        defaults: Value used for each feature a request lacks (None: missing, which
            LightGBM handles natively).
        thresholds: Probabilities from which a transaction is sent to ``review`` and
            ``decline``.
        metadata: Training facts (window, hyperparameters, metrics) shown to users.
    """

    booster: lgb.Booster
    features: list[str]
    defaults: dict[str, float | None]
    thresholds: dict[str, float]
    metadata: dict[str, Any] = field(default_factory=dict)

    def matrix(self, rows: pd.DataFrame) -> np.ndarray:
        """The model input of ``rows``: missing columns and nulls take their defaults."""
        columns = []
        for name in self.features:
            default = self.defaults.get(name)
            fill = np.nan if default is None else float(default)
            if name in rows:
                values = pd.to_numeric(rows[name], errors="coerce").to_numpy(np.float64)
                columns.append(np.where(np.isnan(values), fill, values))
            else:
                columns.append(np.full(len(rows), fill))
        return np.column_stack(columns) if columns else np.empty((len(rows), 0))

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        """Fraud probability of each row."""
        return self.booster.predict(self.matrix(rows))

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """approve / review / decline from the thresholds."""
        p = np.asarray(probabilities, dtype=float)
        return np.select(
            [p >= self.thresholds["decline"], p >= self.thresholds["review"]],
            ["decline", "review"],
            default="approve",
        )

    def reasons(self, rows: pd.DataFrame, top_k: int = 3) -> list[list[dict[str, Any]]]:
        """The features that pushed each score up most (LightGBM contributions, log-odds)."""
        matrix = self.matrix(rows)
        contributions = self.booster.predict(matrix, pred_contrib=True)[:, :-1]
        reasons = []
        for i, row in enumerate(contributions):
            order = np.argsort(-row)[:top_k]
            reasons.append(
                [
                    {
                        "feature": self.features[j],
                        "value": None if np.isnan(matrix[i, j]) else float(matrix[i, j]),
                        "contribution": round(float(row[j]), 6),
                    }
                    for j in order
                    if row[j] > 0
                ]
            )
        return reasons

    @property
    def version(self) -> str:
        """The registry version this model was loaded from ("local" when not registered)."""
        return str(self.metadata.get("registered_version", "local"))

    def save(self, path: Path) -> None:
        """Write the booster and its spec into the folder ``path``."""
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(path / _BOOSTER_FILE))
        spec = {
            "features": self.features,
            "defaults": self.defaults,
            "thresholds": self.thresholds,
            "metadata": self.metadata,
        }
        (path / _SPEC_FILE).write_text(json.dumps(spec, indent=2, default=_json_default))

    @classmethod
    def load(cls, path: Path) -> FraudModel:
        """Read a model written by `save`."""
        spec = json.loads((Path(path) / _SPEC_FILE).read_text())
        booster = lgb.Booster(model_file=str(Path(path) / _BOOSTER_FILE))
        if booster.feature_name() != spec["features"]:
            raise ValueError(
                f"the booster's features {booster.feature_name()} differ from the spec's "
                f"{spec['features']}: the model folder {path} is inconsistent; log it again"
            )
        return cls(
            booster=booster,
            features=spec["features"],
            defaults=spec["defaults"],
            thresholds=spec["thresholds"],
            metadata=spec["metadata"],
        )


class FraudModelPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow's view of a FraudModel: rows in, probability and decision out."""

    def load_context(self, context: Any) -> None:
        self.model = FraudModel.load(Path(context.artifacts["fraud_model"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        probability = self.model.predict_proba(model_input)
        return pd.DataFrame(
            {"fraud_probability": probability, "decision": self.model.decide(probability)}
        )


def log_fraud_model(
    model: FraudModel, example: pd.DataFrame, registered_model_name: str | None
) -> Any:
    """Log the model in the active MLflow run (and register it), with its signature."""
    from mlflow.models import infer_signature  # noqa: PLC0415

    wrapper = FraudModelPyfunc()
    wrapper.model = model
    sample = example[model.features].head(20).astype(float)
    signature = infer_signature(sample, wrapper.predict(None, sample))
    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "fraud_model")
        return mlflow.pyfunc.log_model(
            name="fraud_model",
            python_model=FraudModelPyfunc(),
            artifacts={"fraud_model": str(Path(folder) / "fraud_model")},
            signature=signature,
            input_example=sample.head(3),
            registered_model_name=registered_model_name,
        )


def load_fraud_model(model_uri: str) -> FraudModel:
    """Load a FraudModel from MLflow, e.g. ``models:/fraud_model@champion``."""
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    model: FraudModel = pyfunc.unwrap_python_model().model
    if model_uri.startswith("models:/"):
        model.metadata["registered_version"] = _registered_version(model_uri)
    return model


def _registered_version(model_uri: str) -> str:
    name, _, ref = model_uri.removeprefix("models:/").partition("@")
    client = mlflow.MlflowClient()
    if ref:
        return str(client.get_model_version_by_alias(name, ref).version)
    return model_uri.rsplit("/", 1)[-1]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
