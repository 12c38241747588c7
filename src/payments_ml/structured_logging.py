"""Structured logs: JSON lines for log collectors, and the run context on every record.

The context (pipeline, node, partition) lives in context variables that the Kedro hooks
(``payments_ml.logging_hooks``) and the code processing one partition set; the JSON
formatter adds it to every record, and :func:`partition_scope` writes the partition into
any error raised inside it, so a failure in a Ray task still names its day or partition
when it reaches the driver. Standard library only.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import logging.handlers
import re
import traceback
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = [
    "CONTEXT_FIELDS",
    "JsonFormatter",
    "run_log_path",
    "current_context",
    "error_partition",
    "drop_messages",
    "filter_library_deprecations",
    "log_context",
    "partition_label",
    "partition_scope",
    "run_log_handler",
    "set_context",
]

CONTEXT_FIELDS = ("pipeline", "node", "partition")

_context: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"payments_ml_{name}", default=None) for name in CONTEXT_FIELDS
}

# The note partition_scope adds to an error; error_partition reads it back.
_NOTE_PREFIX = "payments-ml partition: "
_NOTE = re.compile(re.escape(_NOTE_PREFIX) + r"(.+)")

# Attributes every LogRecord has (anything else came from `extra=`), and Kedro's hints
# for its rich console handler.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName", "markup", "rich_format", "highlighter"}


def current_context() -> dict[str, str]:
    """The context fields set in this thread or task (unset ones left out)."""
    return {name: value for name, var in _context.items() if (value := var.get()) is not None}


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Set context fields (``pipeline``, ``node``, ``partition``) for the enclosed code.

    Raises:
        ValueError: A field is not one of ``CONTEXT_FIELDS``.
    """
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context field(s) {sorted(unknown)}; use {CONTEXT_FIELDS}")
    tokens = [(_context[name], _context[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def set_context(**fields: str | None) -> None:
    """Set context fields until changed again (for hooks, which have no enclosing block)."""
    for name, value in fields.items():
        _context[name].set(value)


def partition_label(partition: Mapping[str, Any]) -> str:
    """``{"event_date": "2025-06-09"}`` -> ``"event_date=2025-06-09"`` (Hive style)."""
    return "/".join(f"{key}={value}" for key, value in partition.items())


@contextmanager
def partition_scope(**partition: Any) -> Iterator[str]:
    """Process one partition: its records carry it, and an error raised inside names it.

    Use it inside a Ray task or a per-partition function: the error's traceback (which
    Ray carries to the driver) ends with a note naming the partition, and
    :func:`error_partition` finds it again for the failure log.

    Example::

        with partition_scope(event_date=day.isoformat()):
            return generate_day(world, day)
    """
    label = partition_label(partition)
    token = _context["partition"].set(label)
    try:
        yield label
    except Exception as err:
        if error_partition(err) is None:
            err.add_note(f"{_NOTE_PREFIX}{label}")
        raise
    finally:
        _context["partition"].reset(token)


def error_partition(error: BaseException) -> str | None:
    """The partition an error was raised in, from :func:`partition_scope`'s note.

    Follows ``__cause__``/``__context__`` and Ray's ``cause`` (a task's original error),
    and falls back to the note in a Ray traceback text.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for note in getattr(current, "__notes__", None) or ():
            if match := _NOTE.search(str(note)):
                return match.group(1).strip()
        pending += [
            e
            for e in (current.__cause__, current.__context__, getattr(current, "cause", None))
            if isinstance(e, BaseException)
        ]
    matches = _NOTE.findall(str(error))
    return matches[-1].strip() if matches else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, context, extras.

    The context fields come from the record's ``extra=`` when given, else from the
    running context; an exception adds ``error`` (type and message) and ``traceback``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= current_context()
        entry |= {
            key: value
            for key, value in record.__dict__.items()
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
        }
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["error"] = {"type": type(error).__name__, "message": str(error)}
            entry["traceback"] = "".join(traceback.format_exception(error)).rstrip()
        elif record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


def run_log_handler() -> logging.handlers.RotatingFileHandler | None:
    """The handler of this process's full log (conf/logging.yml's rotating file handler on
    the root logger), if any: ``None`` under another configuration (verbose, the
    cluster's JSON lines, a test runner's own file handler)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.handlers.RotatingFileHandler):
            return handler
    return None


def run_log_path() -> str | None:
    """Where this process writes its full log (:func:`run_log_handler`), if anywhere."""
    handler = run_log_handler()
    return handler.baseFilename if handler else None


def filter_library_deprecations() -> None:
    """Hide the deprecation warnings raised inside libraries, not by this project's code
    (each about 10 lines on every run's console; the libraries' own releases remove them):
    OmegaConf's ``register_new_resolver`` (called by Kedro's and kedro-mlflow's loaders),
    MLflow asking for type hints on kedro-mlflow's ``KedroPipelineModel.predict`` (the
    project's model, ``FraudModelPyfunc``, has them), SQLAlchemy's ``noload`` (MLflow's
    SQL tracking store), Pydantic's ``Field`` extras (Ray Serve's config models).
    Warnings the project's own code triggers are fixed at the cause.
    """
    warnings.filterwarnings("ignore", r"register_new_resolver\(\) is deprecated", UserWarning)
    warnings.filterwarnings("ignore", r"The ``noload`` loader strategy is deprecated")
    # Pydantic 2's note on Ray Serve's own config models (ray/serve/_private/config.py).
    warnings.filterwarnings("ignore", r"Using extra keyword arguments on `Field` is deprecated")
    # MLflow raises this one under its own "once" filter (warnings.catch_warnings), which
    # overrides the filters above: drop it where Kedro logs warnings (py.warnings).
    drop_messages(
        logging.getLogger("py.warnings"),
        "Add type hints to the `predict` method",
        "Using extra keyword arguments on `Field` is deprecated",  # a "once" filter too
    )


def drop_messages(target: logging.Filterer, *fragments: str) -> None:
    """Drop, at ``target`` (a logger or a handler), the records whose message holds one of
    ``fragments``; adding the same fragments again changes nothing."""
    if not any(isinstance(f, DropMessages) and f.fragments == fragments for f in target.filters):
        target.addFilter(DropMessages(*fragments))


class DropMessages(logging.Filter):
    """Drops the records whose message holds one of ``fragments``."""

    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(fragment in text for fragment in self.fragments)
