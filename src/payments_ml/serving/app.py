"""The Ray Serve application: FastAPI routes (DESIGN.md, "Serving API") over a Scorer.

`FraudScorer` takes its model loader as an argument, so tests hand it a model in
memory and deployments hand it `MlflowModelLoader`. Nothing runs at import time:
`build_app` (also the entry point of `serve build` / `serve deploy` configs) binds it.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from ray import serve

from payments_ml.serving.metrics import ScorerMetrics
from payments_ml.serving.schemas import (
    MAX_BODY_BYTES,
    BatchRequest,
    BatchScore,
    Score,
    Transaction,
)
from payments_ml.serving.scorer import Scorer, StoreUnavailable
from payments_ml.training.model import FraudModel

logger = logging.getLogger(__name__)

api = FastAPI(
    title="payments-ml fraud scorer",
    description="Card-payment fraud scores with online features (Feast) and LightGBM.",
)


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 whose message names the offending field (``transactions.3.amount``)."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part != "body") or "body"
        problems.append(f"{where}: {item['msg']}")
    return JSONResponse(
        status_code=422, content={"detail": "; ".join(problems), "errors": problems}
    )


@api.middleware("http")
async def _measure(request: Request, call_next: Callable) -> Response:
    """Body-size limit, then latency and status of every request."""
    start = time.perf_counter()
    length = request.headers.get("content-length")
    if length and int(length) > MAX_BODY_BYTES:
        response: Response = JSONResponse(
            status_code=413,
            content={"detail": f"body of {length} bytes exceeds {MAX_BODY_BYTES} bytes"},
        )
    else:
        response = await call_next(request)
    scorer = getattr(request.app.state, "scorer", None)
    if scorer is not None and request.url.path != "/metrics":
        scorer.metrics.observe_request(
            request.url.path, response.status_code, time.perf_counter() - start
        )
    return response


class MlflowModelLoader:
    """Loads ``model_uri`` (default: the champion) from an MLflow tracking store."""

    def __init__(
        self,
        tracking_uri: str,
        model_uri: str = "models:/fraud_model@champion",
        registry_uri: str | None = None,
    ):
        self.tracking_uri = tracking_uri
        self.model_uri = model_uri
        self.registry_uri = registry_uri or tracking_uri

    def __call__(self) -> FraudModel:
        import mlflow  # noqa: PLC0415

        from payments_ml.training.model import load_fraud_model  # noqa: PLC0415

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        return load_fraud_model(self.model_uri)


@serve.deployment(name="FraudScorer", max_ongoing_requests=256)
@serve.ingress(api)
class FraudScorer:
    """One replica: the model, a Feast store connection and the metrics."""

    def __init__(
        self,
        model_loader: Callable[[], FraudModel],
        feast_config: dict[str, Any],
        ray_metrics: bool = True,
    ) -> None:
        from payments_ml.feature_store.store import open_store  # noqa: PLC0415

        self.model = model_loader()
        self.scorer = Scorer(self.model, open_store(feast_config))
        self.metrics = ScorerMetrics(ray_metrics=ray_metrics)
        self.online_store = feast_config["online_store"]["type"]
        api.state.scorer = self  # one replica per process: the middleware's metrics
        logger.info("FraudScorer ready: model version %s", self.model.version)

    @api.post("/score", response_model=Score)
    async def score(self, transaction: Transaction) -> dict[str, Any]:
        """Score one transaction (requests arriving together are scored as one batch)."""
        return await self._score_together(transaction)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.001)
    async def _score_together(self, transactions: list[Transaction]) -> list[dict[str, Any]]:
        return self._score(transactions)

    @api.post("/score/batch", response_model=BatchScore)
    async def score_batch(self, body: BatchRequest) -> dict[str, Any]:
        """Score up to MAX_BATCH (1000) transactions; answers in request order."""
        return {"results": self._score(body.transactions)}

    @api.get("/health")
    async def health(self) -> dict[str, Any]:
        """Model version and online-store status (``degraded`` when the store fails)."""
        error = self.scorer.check_store()
        return {
            "status": "ok" if error is None else "degraded",
            "model_version": self.model.version,
            "online_store": {"type": self.online_store, "ok": error is None, "error": error},
            "thresholds": self.model.thresholds,
        }

    @api.get("/metrics")
    async def metrics_text(self) -> PlainTextResponse:
        """Prometheus text of this replica."""
        return PlainTextResponse(
            self.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    def _score(self, transactions: list[Transaction]) -> list[dict[str, Any]]:
        frame = pd.DataFrame([t.model_dump() for t in transactions])
        try:
            results = self.scorer.score(frame)
        except StoreUnavailable as error:
            logger.warning("Scoring refused: %s", error)
            raise HTTPException(
                status_code=503,
                detail=f"{error}; scoring resumes by itself when the store is back",
            ) from error
        self.metrics.observe_scores(
            [r["decision"] for r in results], self.scorer.timings.feature_store
        )
        return results


def build_app(args: dict[str, Any]) -> Any:
    """The application of a Serve config: ``import_path: payments_ml.serving.app:build_app``.

    Args:
        args: Either ``project_path`` (and ``env``, default ``base``): the MLflow URIs
            and the Feast settings are read from that Kedro project's configuration,
            as `kedro run` reads them; or ``tracking_uri`` (``registry_uri``) and
            ``feast`` given directly.
            Optional: ``model_uri`` (default the champion), ``num_replicas``,
            ``replica_cpus``.
    """
    if "project_path" in args:
        args = {**project_settings(args["project_path"], args.get("env", "base")), **args}
    loader = MlflowModelLoader(
        args["tracking_uri"], args.get("model_uri", MODEL_URI), args.get("registry_uri")
    )
    return FraudScorer.options(
        num_replicas=args.get("num_replicas", 1),
        ray_actor_options={"num_cpus": args.get("replica_cpus", 1)},
    ).bind(loader, args["feast"])


def project_settings(project_path: str, env: str = "base") -> dict[str, Any]:
    """The tracking URI and Feast settings of a Kedro project's configuration."""
    from pathlib import Path  # noqa: PLC0415

    from kedro.config import OmegaConfigLoader  # noqa: PLC0415

    from payments_ml.feature_store.store import resolved  # noqa: PLC0415
    from payments_ml.settings import CONFIG_LOADER_ARGS  # noqa: PLC0415

    root = Path(project_path).resolve()
    loader = OmegaConfigLoader(
        str(root / "conf"), env=None if env == "base" else env, **CONFIG_LOADER_ARGS
    )
    feast = resolved(loader["parameters"]["feast"], root)
    server = loader["mlflow"]["server"]
    return {
        "tracking_uri": server["mlflow_tracking_uri"],
        "registry_uri": server.get("mlflow_registry_uri") or server["mlflow_tracking_uri"],
        "feast": feast,
    }


MODEL_URI = "models:/fraud_model@champion"
