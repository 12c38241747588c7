"""The Ray Serve application: FastAPI routes over a Scorer (docs/design.md, "Serving API").

`FraudScorer` takes its model loader as an argument, so tests hand it a model in
memory and deployments hand it `MlflowModelLoader`. Nothing runs at import time:
`build_app` (also the entry point of `serve build` / `serve deploy` configs) binds it.

Failure policy, per request:

- bad input is a 422 naming the field (ids beyond int64, event times out of range or
  more than ``event_time.max_ahead_s`` ahead of the server clock included);
- an online store that is missing, locked or unreachable is a 503 with ``Retry-After``
  within ``online_store_timeout_s``; after a failure the store is not tried again for
  ``retry_after_s`` (those requests get their 503 at once), then scoring resumes by
  itself;
- an error while scoring one transaction fails that transaction alone: a batch that
  fails is scored again one transaction at a time;
- bodies are refused beyond ``MAX_BODY_BYTES`` as they are read (413), whatever
  ``Content-Length`` says.

Every answer a replica gives, errors included, names it in ``X-Served-By``
(`replica_name`): with several replicas, the one that gave a bad answer.
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations
# at run time, in the replica, where postponed (string) annotations do not resolve.
import asyncio
import gc
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from ray import serve
from ray.serve.config import BackpressureConfig
from ray.serve.exceptions import RayServeException

from payments_ml.serving.docs_pages import add_docs_pages
from payments_ml.serving.live import LiveStats
from payments_ml.serving.metrics import ScorerMetrics
from payments_ml.serving.model_watch import ModelSource, ModelWatch, fixed_status
from payments_ml.serving.review import add_review_routes
from payments_ml.serving.schemas import (
    ERROR_RESPONSES,
    INT64_MAX,
    MAX_BODY_BYTES,
    BatchRequest,
    BatchScore,
    Health,
    Score,
    Transaction,
    transaction_columns,
)
from payments_ml.serving.scorer import Scored, Scorer, StoreUnavailable
from payments_ml.training.model import FraudModel

logger = logging.getLogger(__name__)
T = TypeVar("T")
_SCORING = ("/score", "/score/batch")
_MEASURED = (*_SCORING, "/health")
_DASHBOARD = (Path(__file__).with_name("dashboard.html")).read_text(encoding="utf-8")
CLIENT_CLOSED = 499  # nginx's status for a request the client gave up on
SERVED_BY = "X-Served-By"  # the header naming the replica that answered


async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 whose message names the offending field (``transactions.3.amount``)."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part != "body") or "body"
        problems.append(f"{where}: {item['msg']}")
    return JSONResponse(
        status_code=422, content={"detail": "; ".join(problems), "errors": problems}
    )


@dataclass(frozen=True)
class Settings:
    """The serving parameters a replica uses (``serving`` in parameters_serving.yml)."""

    online_store_timeout_s: float = 0.25
    retry_after_s: float = 1.0
    max_ahead_s: float | None = 300.0  # None: no bound on event times ahead of the clock
    host: str = "127.0.0.1"  # where Serve listens: loopback keeps the replicas' gRPC there too
    model_watch_s: float | None = 5.0  # None: the model is never replaced while running

    @classmethod
    def from_parameters(cls, serving: dict[str, Any] | None) -> "Settings":
        serving = serving or {}
        event_time = serving.get("event_time") or {}
        return cls(
            online_store_timeout_s=float(
                serving.get("online_store_timeout_s", cls.online_store_timeout_s)
            ),
            retry_after_s=float(serving.get("retry_after_s", cls.retry_after_s)),
            max_ahead_s=event_time.get("max_ahead_s", cls.max_ahead_s),
            host=str(serving.get("host", cls.host)),
            model_watch_s=serving.get("model_watch_s", cls.model_watch_s),
        )


class _Measure:
    """Body-size limit, then latency and status of every request, handed to ``observe``
    (pure ASGI: Starlette's ``BaseHTTPMiddleware`` costs a task and a stream per request)."""

    def __init__(self, app: Any, observe: Callable[[str, int, float], None]) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False

        async def record_status(message: dict) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            body = await _read_body(scope, receive)
            if body is None:
                await _too_large(scope, receive, record_status)
            else:
                await self.app(scope, _replay(body, receive), record_status)
        except BaseException as error:  # noqa: BLE001 (classified, then re-raised)
            if not started and _cancelled(error):
                status = CLIENT_CLOSED
            raise
        finally:
            self.observe(_route_path(scope), status, time.perf_counter() - start)


class _ServedBy:
    """``X-Served-By: <replica>`` on every answer of ``app``. Wraps the whole middleware
    stack (`build_api`), so that the 500 Starlette's outermost middleware sends for an
    unhandled error carries it too."""

    def __init__(self, app: Any, replica: str) -> None:
        self.app = app
        self.header = (SERVED_BY.lower().encode(), replica.encode("latin-1", "replace"))

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_named(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, send_named)


def replica_name() -> str:
    """``<app>#<deployment>#<replica id>``: the Serve replica this process runs, as Ray
    names it (its log is ``logs/serve/replica_<app>_<deployment>_<replica id>.log``);
    ``pid-<pid>`` outside Serve (a replica class built in a test)."""
    try:
        context = serve.get_replica_context()
    except RayServeException:
        return f"pid-{os.getpid()}"
    return f"{context.app_name}#{context.deployment}#{context.replica_tag}"


def _route_path(scope: dict) -> str:
    """The request's path within the app: ``/score`` also when Serve mounts the app under
    a route prefix (``/scorer/score``, with ``root_path`` ``/scorer``)."""
    path, root = scope["path"], scope.get("root_path", "").rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path


async def _read_body(scope: dict, receive: Callable) -> list[dict] | None:
    """The request's body messages, or None beyond MAX_BODY_BYTES (counted as read)."""
    length = dict(scope["headers"]).get(b"content-length")
    if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
        return None
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > MAX_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[dict], receive: Callable) -> Callable:
    """The body messages already read, then the connection's own (a disconnect)."""
    pending = list(messages)

    async def replay() -> dict:
        return pending.pop(0) if pending else await receive()

    return replay


async def _too_large(scope: dict, receive: Callable, send: Callable) -> None:
    response = JSONResponse(
        status_code=413,
        content={"detail": f"request body exceeds {MAX_BODY_BYTES} bytes"},
        headers={"connection": "close"},
    )
    await response(scope, receive, send)


def _cancelled(error: BaseException) -> bool:
    import asyncio  # noqa: PLC0415

    return isinstance(error, asyncio.CancelledError) or "disconnect" in type(error).__name__.lower()


def _exact_openapi(api: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's OpenAPI document, with integer bounds written as integers (FastAPI's
    model types them as floats, which turns the int64 bound into 2**63, not an int64)
    and examples whose fields are in the schema's order (pydantic sorts them by name)."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title, version=api.version, description=api.description, routes=api.routes
            )
            _exact_integer_bounds(schema)
            _examples_in_field_order(schema.get("components", {}).get("schemas", {}))
            api.openapi_schema = schema
        return api.openapi_schema

    return openapi


def _exact_integer_bounds(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                if isinstance(node.get(key), float):
                    bound = node[key]
                    node[key] = INT64_MAX if bound == float(INT64_MAX) else int(bound)
        for value in node.values():
            _exact_integer_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _exact_integer_bounds(value)


def _examples_in_field_order(components: dict[str, Any]) -> None:
    """Each component's ``examples`` with their keys in its properties' order (nested
    objects too), as /docs shows them: ``transaction_id`` first, not ``amount``."""

    def ordered(value: Any, schema: dict[str, Any]) -> Any:
        schema = components.get(schema.get("$ref", "").rpartition("/")[2], schema)
        if isinstance(value, list):
            return [ordered(item, schema.get("items", {})) for item in value]
        if not isinstance(value, dict) or "properties" not in schema:
            return value
        fields = schema["properties"]
        keys = sorted(value, key=lambda k: list(fields).index(k) if k in fields else len(fields))
        return {k: ordered(value[k], fields.get(k, {})) for k in keys}

    for component in components.values():
        if "examples" in component:
            component["examples"] = [ordered(e, component) for e in component["examples"]]


class MlflowModelLoader:
    """Loads ``model_uri`` (default: the champion) from an MLflow tracking store.

    With an alias (``models:/fraud_model@champion``) it is also the replica's
    `ModelSource`: it says which version the alias names now and loads a version by its
    number, so the version a replica reports is the one it loaded even if the alias
    moves in between.
    """

    def __init__(
        self,
        tracking_uri: str,
        model_uri: str = "models:/fraud_model@champion",
        registry_uri: str | None = None,
    ):
        self.tracking_uri = tracking_uri
        self.model_uri = model_uri
        self.registry_uri = registry_uri or tracking_uri

    @property
    def reference(self) -> str:
        return self.model_uri

    @property
    def follows_alias(self) -> bool:
        """True for ``models:/<name>@<alias>``: the version it names can change."""
        return self.model_uri.startswith("models:/") and "@" in self.model_uri

    def __call__(self) -> FraudModel:
        if self.follows_alias:
            return self.load(self.version_now())
        from payments_ml.training.model import load_fraud_model  # noqa: PLC0415

        self._connect()
        return load_fraud_model(self.model_uri)

    def version_now(self) -> str:
        """The registry version the alias names now."""
        from mlflow import MlflowClient  # noqa: PLC0415

        name, _, alias = self.model_uri.removeprefix("models:/").partition("@")
        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        return str(client.get_model_version_by_alias(name, alias).version)

    def load(self, version: str) -> FraudModel:
        """Version ``version`` of the aliased model."""
        from payments_ml.training.model import load_fraud_model  # noqa: PLC0415

        name = self.model_uri.removeprefix("models:/").partition("@")[0]
        self._connect()
        return load_fraud_model(f"models:/{name}/{version}")

    def _connect(self) -> None:
        import mlflow  # noqa: PLC0415

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)


class StoreGuard:
    """The online store's state as the replica last saw it: after a failure, calls are
    refused at once for ``retry_after_s`` (queued requests get their 503 without waiting
    on the store), then one call tries again. A background probe keeps the state fresh
    for /health, which therefore never waits on the store.

    Args:
        check: Raises StoreUnavailable when the store does not answer.
        retry_after_s: How long a failure stands before the store is tried again.
    """

    def __init__(self, check: Callable[[], None], retry_after_s: float) -> None:
        self.check = check
        self.retry_after_s = retry_after_s
        self.error: str | None = None
        self._failed_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._probe, name="store-probe", daemon=True)
        self._thread.start()

    def refuse_if_down(self) -> None:
        """Raise StoreUnavailable while a recent failure stands."""
        if self.error is not None and time.monotonic() - self._failed_at < self.retry_after_s:
            raise StoreUnavailable(self.error)

    def failed(self, error: StoreUnavailable) -> None:
        self.error, self._failed_at = str(error), time.monotonic()

    def succeeded(self) -> None:
        self.error = None

    def _probe(self) -> None:
        while not self._stop.wait(self.retry_after_s / 2):
            try:
                self.check()
            except StoreUnavailable as error:
                self.failed(error)
            except Exception as error:  # a probe never dies
                self.failed(StoreUnavailable(f"the online store check failed: {error}"))
            else:
                self.succeeded()

    def stop(self) -> None:
        self._stop.set()


# Helpers the deployment class uses are defined before it: Serve captures the class
# (with the globals it refers to) when the decorator runs.
def _http_error(error: Exception, retry_after_s: float) -> HTTPException:
    if isinstance(error, StoreUnavailable):
        return HTTPException(
            status_code=503,
            detail=f"{error}; scoring resumes by itself when the store is back",
            headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
        )
    return HTTPException(status_code=500, detail=_failure(error))


def _bind_replica_grpc_to_loopback() -> None:
    """Ray 2.60 binds every replica's inter-deployment gRPC server to ``[::]:0``, whatever
    Serve's host (``ray/serve/_private/replica.py``); the server starts after the
    constructor, so binding it to 127.0.0.1 here keeps a loopback-only deployment closed
    to the network (another node's handles could not reach it: loopback only)."""
    from ray.serve._private import replica  # noqa: PLC0415

    original = replica.add_port_to_grpc_server
    if getattr(original, "loopback_only", False):
        return

    def add_port(server: Any, address: str) -> Any:
        return original(server, "127.0.0.1:0" if address == "[::]:0" else address)

    add_port.loopback_only = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = add_port


def _lazily(make: Callable[[], T]) -> Callable[[], T]:
    """``make()`` on the first call that succeeds, the same object afterwards."""
    made: list[T] = []

    def get() -> T:
        if not made:
            made.append(make())
        return made[0]

    return get


def _failure(error: Exception) -> str:
    return f"this transaction could not be scored ({type(error).__name__}); the error is logged"


@serve.deployment(
    name="FraudScorer",
    max_ongoing_requests=64,
    max_queued_requests=128,
    backpressure_config=BackpressureConfig(status_code=503, retry_after_s=1),
)
@serve.ingress()  # the app is built per replica: __serve_build_asgi_app__
class FraudScorer:
    """One replica: the model (kept on its alias's version), a Feast store connection and
    the metrics."""

    def __init__(
        self,
        model_loader: Callable[[], FraudModel],
        feast_config: dict[str, Any],
        *,
        ray_metrics: bool = True,
        score_log: dict[str, Any] | None = None,
        alerts_path: str | None = None,
        settings: dict[str, Any] | None = None,
        model_source: ModelSource | None = None,
        labels_path: str | None = None,
    ) -> None:
        """``model_loader`` gives the model to start with; ``model_source`` (the loader of
        an aliased model, see `build_app`) is watched for a new version, None: never;
        ``labels_path``: the labels feed analysts' verdicts go to (None: no verdicts)."""
        from payments_ml.feature_store.backends import open_backend  # noqa: PLC0415
        from payments_ml.feature_store.store import open_store  # noqa: PLC0415
        from payments_ml.serving.score_log import ScoreLog  # noqa: PLC0415

        self.settings = Settings.from_parameters(settings)
        self.served_by = replica_name()  # X-Served-By on its answers
        if self.settings.host in ("127.0.0.1", "localhost", "::1"):
            _bind_replica_grpc_to_loopback()
        model = model_loader()
        logging_on = bool(score_log and score_log.get("enabled", True))
        timeout_s = self.settings.online_store_timeout_s
        self.scorer = Scorer(model, open_store(feast_config), log=logging_on, timeout_s=timeout_s)
        # The probe and the log's thread have their own connections (opened when the
        # store first answers: a replica starts while the store is down).
        backend = _lazily(lambda: open_backend(open_store(feast_config), timeout_s))
        self.store_guard = StoreGuard(lambda: backend().check(), self.settings.retry_after_s)
        self.metrics = ScorerMetrics(ray_metrics=ray_metrics)
        self.metrics.model_in_use(model.version)
        self.model_watch = self._watch(model_source, model_loader)
        self.live = LiveStats()
        self.online_store = feast_config["online_store"]["type"]
        self.alerts_path = alerts_path
        self.score_log = None
        path = (score_log or {}).get("path") or feast_config["sources"]["scored_transactions"]
        self.review = self._review_desk(backend, path, labels_path, settings)
        if logging_on:
            self.score_log = ScoreLog(
                _lazily(lambda: backend().outbox()),
                path,
                flush_seconds=score_log.get("flush_seconds", 5.0),
                lease_s=score_log.get("lease_s", 30.0),
            )
        # What the replica loaded (Feast, Arrow, the model: millions of objects) is kept
        # for its life: moved out of the collector's reach, so that a full collection
        # walks only what requests allocate (a process holding the same heap, the
        # benchmark's client, stalled 0.25 s on each full collection).
        gc.collect()
        gc.freeze()
        logger.info(
            "FraudScorer %s ready: model version %s (%s); scored transactions logged to %s",
            self.served_by,
            model.version,
            self.model_status()["source"],
            self.score_log.path if self.score_log else "nowhere (score_log disabled)",
        )

    def _review_desk(
        self, backend: Callable, score_log: str, labels: str | None, settings: dict | None
    ) -> Any:
        """The review loop over this replica's store, log and model ("Review loop")."""
        from payments_ml.serving.review import ReviewDesk  # noqa: PLC0415

        review = (settings or {}).get("review") or {}
        return ReviewDesk(
            _lazily(lambda: backend().review()),
            score_log=score_log,
            labels=labels,
            model=lambda: self.scorer.model,
            analysts=review.get("analysts") or {},
            history=int(review.get("history", 10)),
        )

    @property
    def model(self) -> FraudModel:
        """The model in use (the watch replaces it when the alias moves)."""
        return self.scorer.model

    def _watch(self, source: ModelSource | None, loader: Any) -> ModelWatch | None:
        """A watch of ``source`` every ``model_watch_s``; None when there is nothing to
        watch (a pinned version, a model in memory) or the setting is null."""
        self._started = time.time()
        self._source = getattr(source or loader, "reference", "given by the deployment")
        if source is None or not self.settings.model_watch_s:
            return None
        return ModelWatch(
            source,
            self.scorer.model,
            float(self.settings.model_watch_s),
            on_switch=self._switch_model,
            on_failure=lambda version: self.metrics.model_load_failed(),
        )

    def _switch_model(self, model: FraudModel) -> None:
        """Install a warm model: one assignment, which requests scoring now do not see
        (each `Scorer.score` reads the model once), then freeze what it allocated as
        `__init__` froze the first model's heap."""
        previous = self.scorer.model
        self.scorer.model = model
        self.metrics.model_switched(previous.version, model.version)
        gc.collect()
        gc.freeze()

    def model_status(self) -> dict[str, Any]:
        """The model in use, where it comes from, and the watch's state."""
        if self.model_watch is not None:
            return self.model_watch.status()
        return fixed_status(self.scorer.model, self._source, self._started)

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Serve builds the replica's HTTP API after ``__init__``."""
        return build_api(self)

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        """Status and latency of one HTTP request (the scoring routes and /health)."""
        if path not in _MEASURED:
            return
        self.metrics.observe_request(path, status, seconds)
        if path in _SCORING and status != CLIENT_CLOSED:
            self.live.observe_request(seconds, status)

    def __del__(self) -> None:
        """Serve calls this when the replica stops: move the outbox's last records."""
        if getattr(self, "store_guard", None) is not None:
            self.store_guard.stop()
        if getattr(self, "model_watch", None) is not None:
            self.model_watch.stop()
        if getattr(self, "score_log", None) is not None:
            self.score_log.close()

    async def score(self, transaction: Transaction) -> Any:
        """Score one transaction (requests arriving together are scored as one batch)."""
        self._refuse_future([transaction], batch=False)
        result = await self._score_together(transaction)
        if isinstance(result, Exception):
            raise _http_error(result, self.settings.retry_after_s)
        return result

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)  # no wait: batches form under load
    async def _score_together(self, transactions: list[Transaction]) -> list[Any]:
        return self._score(transactions)

    async def score_batch(self, body: BatchRequest) -> Any:
        """Score up to MAX_BATCH (1000) transactions; answers in request order. A
        transaction that could not be scored has an ``error`` instead of a score."""
        self._refuse_future(body.transactions, batch=True)
        results = self._score(body.transactions)
        unavailable = [r for r in results if isinstance(r, StoreUnavailable)]
        if unavailable:
            raise _http_error(unavailable[0], self.settings.retry_after_s)
        return {
            "results": [
                {"transaction_id": t.transaction_id, "error": _failure(r)}
                if isinstance(r, Exception)
                else r
                for t, r in zip(body.transactions, results, strict=True)
            ]
        }

    def _refuse_future(self, transactions: list[Transaction], batch: bool) -> None:
        """422 for an event time further ahead of the server clock than allowed: one
        such transaction must not blind the customer's velocity features."""
        ahead_s = self.settings.max_ahead_s
        if ahead_s is None:
            return
        now = datetime.now(UTC)
        errors = [
            {
                "loc": ("body", "transactions", i, "event_timestamp")
                if batch
                else ("body", "event_timestamp"),
                "msg": (
                    f"{t.event_timestamp.isoformat()} is more than {ahead_s:g} s ahead of "
                    f"the server clock ({now.isoformat(timespec='seconds')}); check the "
                    "sender's clock"
                ),
                "type": "value_error",
            }
            for i, t in enumerate(transactions)
            if t.event_timestamp > now + timedelta(seconds=ahead_s)
        ]
        if errors:
            raise RequestValidationError(errors)

    def _score(self, transactions: list[Transaction]) -> list[Any]:
        """Answers in order; a transaction that failed gets its exception instead: a
        StoreUnavailable for all when the store failed, else its own error only."""
        try:
            return self._score_checked(transactions)
        except StoreUnavailable as error:
            return [error] * len(transactions)
        except Exception as error:
            if len(transactions) == 1:
                logger.exception("Could not score transaction %r", transactions[0].transaction_id)
                return [error]
            logger.warning(
                "A batch of %d failed (%s); scoring its transactions one by one",
                len(transactions),
                error,
            )
        return [result for t in transactions for result in self._score([t])]

    def _score_checked(self, transactions: list[Transaction]) -> list[dict[str, Any]]:
        self.store_guard.refuse_if_down()
        try:
            scored = self.scorer.score(transaction_columns(transactions))
        except StoreUnavailable as error:
            self.store_guard.failed(error)
            logger.warning("Scoring refused: %s", error)
            raise
        self._observe(scored)
        return scored.answers()

    def _observe(self, scored: Scored) -> None:
        self.metrics.observe_scores(scored.decisions, scored.store_seconds)
        self.live.observe_scores(scored.decisions, scored.probability.tolist())

    async def health(self) -> dict[str, Any]:
        """Model version and online-store status (``degraded`` when the store fails);
        never waits on the store (a background probe checks it)."""
        error = self.store_guard.error
        model = self.scorer.model
        return {
            "status": "ok" if error is None else "degraded",
            "model_version": model.version,
            "model": self.model_status(),
            "online_store": {"type": self.online_store, "ok": error is None, "error": error},
            "thresholds": model.thresholds,
        }

    async def dashboard(self) -> HTMLResponse:
        """The live dashboard for analysts (refreshes itself every 5 s)."""
        return HTMLResponse(_DASHBOARD)

    async def dashboard_data(self) -> dict[str, Any]:
        """The dashboard's figures: recent scoring, the store's state, active alerts."""
        model = self.scorer.model
        return {
            "model_version": model.version,
            "model": self.model_status(),
            "thresholds": model.thresholds,
            "online_store_ok": self.store_guard.error is None,
            "live": self.live.summary(),
            "alerts": self._active_alerts(),
            "score_log": {
                "written": self.score_log.written if self.score_log else 0,
                "failures": self.score_log.failures if self.score_log else 0,
            },
            "review": await asyncio.to_thread(self._review_outcome),  # file reads: off the loop
        }

    def _review_outcome(self) -> list[dict[str, Any]]:
        """The review loop's latest days (precision of review, queue, time to verdict)."""
        try:
            return self.review.outcome(days=3)
        except Exception as error:  # the dashboard shows the rest
            logger.warning("Could not compute the review outcome: %s", error)
            return []

    def _active_alerts(self) -> list[dict[str, Any]]:
        if not self.alerts_path:
            return []
        from payments_ml.monitoring.alerts import active_alerts  # noqa: PLC0415

        try:
            return active_alerts(self.alerts_path)
        except OSError as error:
            logger.warning("Could not read alerts from %s: %s", self.alerts_path, error)
            return []

    async def metrics_text(self) -> PlainTextResponse:
        """Prometheus text of this replica."""
        return PlainTextResponse(
            self.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )


def build_api(replica: FraudScorer) -> FastAPI:
    """The HTTP API of one replica: its routes call the replica's methods, every
    request's status and latency go to the replica's metrics (`FraudScorer.observe_request`)
    and every answer names the replica (``X-Served-By``)."""
    api = FastAPI(
        title="payments-ml fraud scorer",
        description="Card-payment fraud scores with online features (Feast) and LightGBM.",
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: served locally below
        redoc_url=None,
    )
    add_docs_pages(api)
    api.add_exception_handler(RequestValidationError, _invalid)
    api.add_middleware(_Measure, observe=replica.observe_request)
    api.openapi = _exact_openapi(api)
    stack = api.build_middleware_stack  # Starlette builds it at the first request
    api.build_middleware_stack = lambda: _ServedBy(stack(), replica.served_by)  # type: ignore[method-assign]
    scoring = {"responses": ERROR_RESPONSES, "methods": ["POST"]}
    api.add_api_route("/score", replica.score, response_model=Score, **scoring)
    api.add_api_route("/score/batch", replica.score_batch, response_model=BatchScore, **scoring)
    api.add_api_route("/health", replica.health, response_model=Health)
    api.add_api_route(
        "/dashboard", replica.dashboard, response_class=HTMLResponse, include_in_schema=False
    )
    api.add_api_route("/dashboard/data", replica.dashboard_data)
    add_review_routes(api, replica.review)
    api.add_api_route(
        "/metrics",
        replica.metrics_text,
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    return api


def build_app(args: dict[str, Any]) -> Any:
    """The application of a Serve config: ``import_path: payments_ml.serving.app:build_app``.

    Args:
        args: Either ``project_path`` (and ``env``, default ``base``): the MLflow URIs
            and the Feast settings are read from that Kedro project's configuration,
            as `kedro run` reads them; or ``tracking_uri`` (``registry_uri``) and
            ``feast`` given directly.
            Optional: ``model_uri`` (default the champion), ``num_replicas``,
            ``replica_cpus``, ``settings`` (the ``serving`` parameters).
    """
    if "project_path" in args:
        from payments_ml.config import project_settings  # noqa: PLC0415

        args = {**project_settings(args["project_path"], args.get("env", "base")), **args}
    loader = MlflowModelLoader(
        args["tracking_uri"], args.get("model_uri", MODEL_URI), args.get("registry_uri")
    )
    serving = args.get("settings") or {}
    retry_after_s = Settings.from_parameters(serving).retry_after_s
    return FraudScorer.options(
        num_replicas=args.get("num_replicas", 1),
        ray_actor_options={"num_cpus": args.get("replica_cpus", 1)},
        max_ongoing_requests=serving.get("max_ongoing_requests", 64),
        max_queued_requests=serving.get("max_queued_requests", 128),
        backpressure_config=BackpressureConfig(status_code=503, retry_after_s=retry_after_s),
    ).bind(
        loader,
        args["feast"],
        score_log=args.get("score_log"),
        alerts_path=args.get("alerts_path"),
        settings=args.get("settings"),
        model_source=model_source(loader),
        labels_path=args.get("labels_path"),
    )


def model_source(loader: MlflowModelLoader) -> MlflowModelLoader | None:
    """What a replica watches for a new model: the loader of an alias; None for a
    version pinned by number (or a run's model), which never changes."""
    return loader if loader.follows_alias else None


MODEL_URI = "models:/fraud_model@champion"
