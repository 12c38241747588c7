"""Logging per Kedro environment, and failures logged with their pipeline, node and partition.

Kedro reads one logging configuration per process (``KEDRO_LOGGING_CONFIG`` or
``conf/logging.yml``: readable text). :class:`LoggingHook` applies
``conf/<env>/logging.yml`` on top when the run's environment has one, so
``kedro run --env cluster`` logs JSON lines (``conf/cluster/logging.yml``).
"""

from __future__ import annotations

import datetime as dt
import logging
import logging.config
import os
import re
import sys
import time
import traceback
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

from payments_ml.structured_logging import (
    drop_messages,
    error_partition,
    partition_label,
    run_log_handler,
    run_log_path,
    set_context,
)

logger = logging.getLogger(__name__)
progress = logging.getLogger("payments_ml.progress")

# The "KeyError: 'customer_id'" line of a traceback text (not Ray's own wrappers).
_RAISED = re.compile(r"^(?!ray\.)[A-Za-z_][\w.]*(Error|Exception)\b.*$", re.MULTILINE)

# Modules a logging configuration may take classes from (Kedro allows the first two).
_ALLOWED_MODULES = ("logging", "kedro.logging", "payments_ml")


def apply_logging_config(config: dict[str, Any]) -> None:
    """Apply a ``logging.config.dictConfig`` configuration from the project's conf/.

    Like Kedro's own loader, it refuses ``()`` factories and classes from modules other
    than ``logging``, ``kedro.logging`` and this package.

    Raises:
        ValueError: The configuration names a factory or a class from another module.
    """
    _check_classes(config)
    logging.config.dictConfig(config)


def _check_classes(config: Any, where: str = "logging") -> None:
    if isinstance(config, dict):
        if "()" in config:
            raise ValueError(
                f"{where}: '()' factories are not allowed in a logging configuration; "
                "name a Handler, Formatter or Filter subclass with 'class:'"
            )
        module = str(config.get("class", "")).rpartition(".")[0]
        if "class" in config and not any(
            module == allowed or module.startswith(f"{allowed}.") for allowed in _ALLOWED_MODULES
        ):
            raise ValueError(
                f"{where}: class {config['class']!r} is not from {list(_ALLOWED_MODULES)}; "
                "only those modules may appear in conf/<env>/logging.yml"
            )
        for key, value in config.items():
            _check_classes(value, f"{where}.{key}")
    elif isinstance(config, list):
        for item in config:
            _check_classes(item, where)


def params_partition(inputs: dict[str, Any]) -> str | None:
    """The days a node works on, where its parameters say so (data_gen's ``run_date``).

    A daily re-run names its one day; a full data_gen run its first and last day.
    """
    params = inputs.get("params:data_gen")
    if not isinstance(params, dict):
        return None
    if params.get("run_date"):
        return partition_label({"event_date": params["run_date"]})
    try:
        first = dt.date.fromisoformat(str(params["start_date"]))
        last = first + dt.timedelta(days=int(params["n_days"]) - 1)
    except (KeyError, TypeError, ValueError):
        return None  # data_gen's own checks report bad values
    return partition_label({"event_date": f"{first}..{last}"})


class LoggingHook:
    """Environment logging, the run context on every record, and failures with context."""

    def __init__(self) -> None:
        self._config: dict[str, Any] | None = None
        self._pipeline: str | None = None
        self._failed: dict[int, tuple[str, str | None]] = {}  # id(error) -> node, partition

    @hook_impl(tryfirst=True)  # before other hooks log, so their records are formatted too
    def after_context_created(self, context: Any) -> None:
        loader = context.config_loader
        env = loader.env or loader.default_run_env
        try:
            self._config = loader["logging"] or None
        except (KeyError, MissingConfigException):
            self._config = None  # no "logging" config pattern, or no logging.yml here
        if self._config:
            apply_logging_config(self._config)
            logger.info("Logging configured by conf/%s/logging.yml", env)

    @hook_impl(trylast=True)  # after RayHook connected
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        if self._config:
            # Ray sets its loggers up when imported (with the pipelines) and connected:
            # apply the environment's configuration again so that it has the last word.
            apply_logging_config(self._config)
        self._pipeline = _pipeline_label(run_params)
        self._failed.clear()
        set_context(pipeline=self._pipeline, node=None, partition=None)

    @hook_impl
    def before_node_run(self, node: Any, inputs: dict[str, Any]) -> None:
        # Runners may run nodes in other threads: set the context where the node runs.
        set_context(pipeline=self._pipeline, node=node.name, partition=params_partition(inputs))

    @hook_impl
    def after_node_run(self) -> None:
        set_context(node=None, partition=None)

    @hook_impl
    def on_node_error(self, error: Exception, node: Any, inputs: dict[str, Any]) -> None:
        partition = error_partition(error) or params_partition(inputs)
        self._failed[id(error)] = (node.name, partition)
        logger.error(
            "Node %s of pipeline %s failed%s: %s: %s",
            node.name,
            self._pipeline,
            f" on partition {partition}" if partition else "",
            type(error).__name__,
            _first_line(error),
            extra={
                "pipeline": self._pipeline,
                "node": node.name,
                "partition": partition,
                "error_type": type(error).__name__,
                # A field, not exc_info: Kedro's console prints the traceback already.
                "traceback": "".join(traceback.format_exception(error)).rstrip(),
            },
        )
        set_context(node=None, partition=None)

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any]) -> None:
        pipeline = _pipeline_label(run_params)
        node, partition = self._failed.get(id(error), (None, error_partition(error)))
        logger.error(
            "Pipeline %s failed%s%s: %s: %s",
            pipeline,
            f" at node {node}" if node else "",
            f" on partition {partition}" if partition else "",
            type(error).__name__,
            _first_line(error),
            extra={
                "pipeline": pipeline,
                "node": node,
                "partition": partition,
                "error_type": type(error).__name__,
            },
        )
        set_context(pipeline=None, node=None, partition=None)

    @hook_impl
    def after_pipeline_run(self) -> None:
        set_context(pipeline=None, node=None, partition=None)


def _pipeline_label(run_params: dict[str, Any]) -> str:
    # `kedro run --pipelines b,a` passes the names in no fixed order.
    return ",".join(sorted(run_params.get("pipeline_names") or ["__default__"]))


def _first_line(error: BaseException) -> str:
    """The error's own message: Ray's task errors start with the task and its traceback."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException) and cause is not error:
        if type(cause).__name__ == "UserCodeException":  # Ray Data wraps the UDF's error
            raised = _RAISED.search(str(error))
            if raised:
                return raised.group(0)
        return _first_line(cause)
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


# Libraries that print on handlers of their own (set up as they are imported, or as Ray
# is joined) rather than through the root logger.
_OWN_HANDLERS = ("ray", "ray.data", "ray.tune", "ray.train", "ray.serve", "mlflow", "optuna")


# Library warnings about how the library itself works, not about this run: the run log
# keeps them, the quiet console does not.
_NOTES = (
    # MLflow on every pyfunc model logged from a Python object (FraudModelPyfunc).
    "causes it to be serialized using CloudPickle",
)


def quiet_library_consoles() -> None:
    """Under the quiet configuration (conf/logging.yml: a run log file on the root
    logger), the libraries' own console handlers keep their warnings and errors (but
    ``_NOTES``); their INFO goes to the run's log file."""
    file = run_log_handler()
    if file is None:  # verbose (conf/logging-verbose.yml), or the cluster's JSON lines
        return
    if not sys.stderr.isatty():  # MLflow's download bars, a line each in a pipe
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in _OWN_HANDLERS:
        library = logging.getLogger(name)
        for handler in library.handlers:
            console = isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            )
            if console and not type(handler).__module__.startswith("_pytest"):
                handler.setLevel(logging.WARNING)  # the library's own console handler
                drop_messages(handler, *_NOTES)
        if not library.propagate and file not in library.handlers:
            library.addHandler(file)


class ProgressHook:
    """One console line per node, ``[k/N] node  seconds``, and where the full log is."""

    def __init__(self) -> None:
        self._total = 0
        self._done = 0
        self._started: dict[str, float] = {}
        self._run_started = 0.0

    @hook_impl(tryfirst=True)  # before kedro-mlflow's hook sets its store up (and logs it)
    def after_context_created(self) -> None:
        quiet_library_consoles()

    @hook_impl(trylast=True)  # after RayHook connected (Ray Data and Tune set up theirs)
    def before_pipeline_run(self, pipeline: Any) -> None:
        self._total, self._done = len(pipeline.nodes), 0
        self._run_started = time.perf_counter()
        quiet_library_consoles()

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self._started[node.name] = time.perf_counter()
        quiet_library_consoles()  # libraries the last node imported set up their handlers

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        self._done += 1
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        progress.info("[%d/%d] %s  %.1f s", self._done, self._total, node.name, seconds)

    @hook_impl
    def after_pipeline_run(self) -> None:
        seconds = time.perf_counter() - self._run_started
        path = run_log_path()
        progress.info("Done in %.0f s%s", seconds, f"; full log: {path}" if path else "")

    @hook_impl
    def on_pipeline_error(self) -> None:
        path = run_log_path()
        if path:
            progress.error("Full log: %s", path)
