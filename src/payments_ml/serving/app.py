"""The Ray Serve application: FastAPI routes (DESIGN.md, "Serving API") over a Scorer.

`FraudScorer` takes its model loader as an argument, so tests hand it a model in
memory and deployments hand it `MlflowModelLoader`. Nothing runs at import time:
`build_app` (also the entry point of `serve build` / `serve deploy` configs) binds it.
"""

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from ray import serve

from payments_ml.serving.live import LiveStats
from payments_ml.serving.metrics import ScorerMetrics
from payments_ml.serving.schemas import (
    MAX_BODY_BYTES,
    BatchRequest,
    BatchScore,
    Score,
    Transaction,
    transaction_columns,
)
from payments_ml.serving.score_log import ScoreLog
from payments_ml.serving.scorer import Scorer, StoreUnavailable
from payments_ml.training.model import FraudModel

logger = logging.getLogger(__name__)
_SCORING = ("/score", "/score/batch")
_MEASURED = (*_SCORING, "/health")
_DASHBOARD = (Path(__file__).with_name("dashboard.html")).read_text(encoding="utf-8")

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


class _Measure:
    """Body-size limit, then latency and status of every request (pure ASGI: Starlette's
    ``BaseHTTPMiddleware`` costs a task and a stream per request)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        length = dict(scope["headers"]).get(b"content-length")
        status = 500

        async def record_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if length and int(length) > MAX_BODY_BYTES:
                await JSONResponse(
                    status_code=413,
                    content={
                        "detail": f"body of {int(length)} bytes exceeds {MAX_BODY_BYTES} bytes"
                    },
                )(scope, receive, record_status)
            else:
                await self.app(scope, receive, record_status)
        finally:
            app = scope.get("app", api)  # Serve runs a copy of `api`: the request's app
            scorer = getattr(app.state, "scorer", None)
            path = scope["path"]
            if scorer is not None and path in _MEASURED:
                seconds = time.perf_counter() - start
                scorer.metrics.observe_request(path, status, seconds)
                if path in _SCORING:
                    scorer.live.observe_request(seconds, status < 400)  # noqa: PLR2004


api.add_middleware(_Measure)


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
        score_log: dict[str, Any] | None = None,
        alerts_path: str | None = None,
    ) -> None:
        from payments_ml.feature_store.store import open_store  # noqa: PLC0415

        self.model = model_loader()
        self.scorer = Scorer(self.model, open_store(feast_config))
        self.metrics = ScorerMetrics(ray_metrics=ray_metrics)
        self.live = LiveStats()
        self.online_store = feast_config["online_store"]["type"]
        self.alerts_path = alerts_path
        self.score_log = None
        if score_log and score_log.get("enabled", True):
            path = score_log.get("path") or feast_config["sources"]["scored_transactions"]
            self.score_log = ScoreLog(path, score_log.get("flush_seconds", 5.0))
        api.state.scorer = self  # one replica per process: the middleware's metrics
        logger.info(
            "FraudScorer ready: model version %s; scored transactions logged to %s",
            self.model.version,
            self.score_log.path if self.score_log else "nowhere (score_log disabled)",
        )

    def __del__(self) -> None:
        """Serve calls this when the replica stops: write the log's last rows."""
        if getattr(self, "score_log", None) is not None:
            self.score_log.close()

    @api.post("/score", response_model=Score)
    async def score(self, transaction: Transaction) -> dict[str, Any]:
        """Score one transaction (requests arriving together are scored as one batch)."""
        return await self._score_together(transaction)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)  # no wait: batches form under load
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

    @api.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard(self) -> HTMLResponse:
        """The live dashboard for analysts (refreshes itself every 5 s)."""
        return HTMLResponse(_DASHBOARD)

    @api.get("/dashboard/data")
    async def dashboard_data(self) -> dict[str, Any]:
        """The dashboard's figures: recent scoring, the store's state, active alerts."""
        return {
            "model_version": self.model.version,
            "online_store_ok": self.scorer.check_store() is None,
            "live": self.live.summary(),
            "alerts": self._active_alerts(),
            "score_log": {
                "written": self.score_log.written if self.score_log else 0,
                "dropped": self.score_log.dropped if self.score_log else 0,
            },
        }

    def _active_alerts(self) -> list[dict[str, Any]]:
        if not self.alerts_path:
            return []
        from payments_ml.monitoring.alerts import active_alerts  # noqa: PLC0415

        try:
            return active_alerts(self.alerts_path)
        except OSError as error:
            logger.warning("Could not read alerts from %s: %s", self.alerts_path, error)
            return []

    @api.get("/metrics")
    async def metrics_text(self) -> PlainTextResponse:
        """Prometheus text of this replica."""
        return PlainTextResponse(
            self.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    def _score(self, transactions: list[Transaction]) -> list[dict[str, Any]]:
        try:
            results = self.scorer.score(transaction_columns(transactions))
        except StoreUnavailable as error:
            logger.warning("Scoring refused: %s", error)
            raise HTTPException(
                status_code=503,
                detail=f"{error}; scoring resumes by itself when the store is back",
            ) from error
        decisions = [r["decision"] for r in results]
        self.metrics.observe_scores(decisions, self.scorer.timings.feature_store)
        last = self.scorer.last
        self.live.observe_scores(decisions, last["probability"].tolist())
        if self.score_log is not None:
            self.score_log.add(
                last["batch"], last["features"], last["probability"], decisions, self.model.version
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
    ).bind(
        loader,
        args["feast"],
        score_log=args.get("score_log"),
        alerts_path=args.get("alerts_path"),
    )


def project_settings(project_path: str, env: str = "base") -> dict[str, Any]:
    """The tracking URI and Feast settings of a Kedro project's configuration."""
    from kedro.config import OmegaConfigLoader  # noqa: PLC0415

    from payments_ml.feature_store.store import absolute_path, resolved  # noqa: PLC0415
    from payments_ml.settings import CONFIG_LOADER_ARGS  # noqa: PLC0415

    root = Path(project_path).resolve()
    loader = OmegaConfigLoader(
        str(root / "conf"), env=None if env == "base" else env, **CONFIG_LOADER_ARGS
    )
    parameters = loader["parameters"]
    feast = resolved(parameters["feast"], root)
    serving = parameters.get("serving", {})
    server = loader["mlflow"]["server"]
    return {
        "tracking_uri": server["mlflow_tracking_uri"],
        "registry_uri": server.get("mlflow_registry_uri") or server["mlflow_tracking_uri"],
        "feast": feast,
        "score_log": serving.get("score_log"),
        "alerts_path": absolute_path(serving.get("alerts_path"), root),
    }


MODEL_URI = "models:/fraud_model@champion"
