"""Structured logging: the JSON formatter, the run context, partitions named in errors."""

from __future__ import annotations

import io
import json
import logging
from types import SimpleNamespace

import pandas as pd
import pytest

from payments_ml.config import config_loader
from payments_ml.logging_hooks import LoggingHook, apply_logging_config, params_partition
from payments_ml.structured_logging import (
    JsonFormatter,
    error_partition,
    log_context,
    partition_scope,
    set_context,
)
from tests.conftest import PROJECT_ROOT


@pytest.fixture(autouse=True)
def _no_context_left():
    """The hooks set the run context for the rest of the thread: clear it after each test."""
    yield
    set_context(pipeline=None, node=None, partition=None)


@pytest.fixture
def restore_logging():
    """Put every logger back as it was: the tests apply real logging configurations."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        logging.getLogger(name)
        for name, value in list(manager.loggerDict.items())
        if isinstance(value, logging.Logger)
    ]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate, lg.disabled) for lg in loggers]
    yield
    for lg, level, handlers, propagate, disabled in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate, lg.disabled = propagate, disabled


def _json_lines(logger_name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, stream


def _records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_message_context_extras_and_error(restore_logging):
    logger, stream = _json_lines("payments_ml.test_json")
    with log_context(pipeline="data_gen", node="generate_transactions_node"):
        logger.info("wrote %d rows to %s", 3, "a\nb", extra={"rows": 3})
        try:
            raise ValueError("amount must be > 0, got -3.2")
        except ValueError:
            logger.exception("write failed")
    logger.info("after")
    info, error, after = _records(stream)
    assert info["message"] == "wrote 3 rows to a\nb" and info["level"] == "INFO"
    assert info["logger"] == "payments_ml.test_json" and info["time"].endswith("+00:00")
    assert info["pipeline"] == "data_gen" and info["node"] == "generate_transactions_node"
    assert info["rows"] == 3 and "partition" not in info
    assert error["error"] == {"type": "ValueError", "message": "amount must be > 0, got -3.2"}
    assert "Traceback" in error["traceback"] and error["level"] == "ERROR"
    assert "pipeline" not in after  # the context ended with the block


def test_unknown_context_fields_are_named():
    with pytest.raises(ValueError, match=r"unknown log context field\(s\) \['day'\]"):
        with log_context(day="2025-06-09"):
            pass


def test_an_error_in_a_ray_task_names_its_partition(ray_session):
    """The note survives Ray's task error: in its message and for error_partition."""

    @ray_session.remote
    def fail(day: str) -> None:
        with partition_scope(event_date=day):
            raise ValueError("generator produced a negative amount")

    with pytest.raises(ValueError) as caught:  # RayTaskError(ValueError)
        ray_session.get(fail.remote("2025-06-09"))
    assert "partition: event_date=2025-06-09" in str(caught.value)
    assert error_partition(caught.value) == "event_date=2025-06-09"


def test_the_innermost_partition_is_kept_and_records_carry_it(restore_logging):
    logger, stream = _json_lines("payments_ml.test_partition")
    with pytest.raises(KeyError) as caught:
        with partition_scope(event_date="2025-06-09"):
            with partition_scope(event_date="2025-06-09", customer_bucket=3):
                logger.info("processing")
                raise KeyError("customer_id")
    assert error_partition(caught.value) == "event_date=2025-06-09/customer_bucket=3"
    assert len(caught.value.__notes__) == 1
    assert _records(stream)[0]["partition"] == "event_date=2025-06-09/customer_bucket=3"
    assert error_partition(RuntimeError("no partition")) is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"run_date": "2025-06-11", "start_date": "2025-06-09", "n_days": 4}, "2025-06-11"),
        ({"run_date": None, "start_date": "2025-06-09", "n_days": 4}, "2025-06-09..2025-06-12"),
        ({"run_date": None, "start_date": "June", "n_days": 4}, None),
    ],
)
def test_data_gen_parameters_name_the_days(params, expected):
    found = params_partition({"params:data_gen": params})
    assert found == (expected and f"event_date={expected}")
    assert params_partition({"params:features": {"label_delay_days": 7}}) is None


def test_a_failing_node_is_logged_once_with_pipeline_node_and_partition(
    ray_session, restore_logging
):
    """on_node_error names the node and the Ray task's partition; the pipeline error too."""
    logger, stream = _json_lines("payments_ml.logging_hooks")

    @ray_session.remote
    def fail() -> None:
        with partition_scope(event_date="2025-06-10"):
            raise ValueError("amount must be > 0, got -3.2 in transaction tx_17")

    try:
        ray_session.get(fail.remote())
    except Exception as err:  # Ray's dual class: RayTaskError and ValueError
        error = err
    hook = LoggingHook()
    run_params = {"pipeline_names": ["features", "data_gen"]}
    node = SimpleNamespace(name="generate_transactions_node")
    inputs = {"params:data_gen": {"run_date": None, "start_date": "2025-06-09", "n_days": 4}}
    hook.before_pipeline_run(run_params)
    hook.before_node_run(node, inputs)
    hook.on_node_error(error, node, inputs)
    hook.on_pipeline_error(error, run_params)
    node_record, pipeline_record = _records(stream)
    for record in (node_record, pipeline_record):
        assert record["level"] == "ERROR" and record["error_type"] == "RayTaskError(ValueError)"
        assert record["pipeline"] == "data_gen,features"
        assert record["node"] == "generate_transactions_node"
        assert record["partition"] == "event_date=2025-06-10"  # the task's, not the range
    assert node_record["message"] == (
        "Node generate_transactions_node of pipeline data_gen,features failed on partition "
        "event_date=2025-06-10: RayTaskError(ValueError): amount must be > 0, got -3.2 in "
        "transaction tx_17"
    )
    assert pipeline_record["message"].startswith(
        "Pipeline data_gen,features failed at node generate_transactions_node on partition"
    )
    assert "raise ValueError" in node_record["traceback"] and "traceback" not in pipeline_record


def test_a_failing_ray_data_batch_is_reported_by_its_own_error(ray_session, restore_logging):
    """Ray Data wraps a UDF's error: the log names the UDF's error and the partition."""

    def windows(batch: pd.DataFrame) -> pd.DataFrame:
        with partition_scope(customer_id=f"{batch['customer_id'].min()}..9"):
            raise KeyError("event_timestamp")

    frame = ray_session.data.from_pandas(pd.DataFrame({"customer_id": [3, 9]}))
    with pytest.raises(ray_session.exceptions.UserCodeException) as caught:
        frame.map_batches(windows, batch_format="pandas").materialize()
    logger, stream = _json_lines("payments_ml.logging_hooks")
    hook = LoggingHook()
    hook.before_pipeline_run({"pipeline_names": ["features"]})
    hook.on_node_error(caught.value, SimpleNamespace(name="build_customer_features_node"), {})
    (record,) = _records(stream)
    assert record["partition"] == "customer_id=3..9"
    assert record["message"].endswith(
        "failed on partition customer_id=3..9: RayTaskError(UserCodeException): "
        "KeyError: 'event_timestamp'"
    )


def test_cluster_environment_switches_to_json_lines(restore_logging, capsys):
    """conf/cluster/logging.yml, applied by the hook: JSON on stderr with the run context."""
    loader = config_loader(PROJECT_ROOT, "cluster")
    hook = LoggingHook()
    hook.after_context_created(SimpleNamespace(config_loader=loader))
    hook.before_pipeline_run({"pipeline_names": ["data_gen"]})
    logging.getLogger("kedro.runner").info("Completed %d out of %d tasks", 1, 4)
    logging.getLogger("ray.data").info("hidden: Ray's INFO is below the configured level")
    lines = capsys.readouterr().err.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["message"] == "Logging configured by conf/cluster/logging.yml"
    assert records[-1]["message"] == "Completed 1 out of 4 tasks"
    assert records[-1]["pipeline"] == "data_gen"
    assert not [r for r in records if r["logger"] == "ray.data"]
    hook.after_pipeline_run()


def test_local_environment_keeps_its_logging(restore_logging):
    root_handlers = list(logging.getLogger().handlers)
    loader = config_loader(PROJECT_ROOT, "local")
    LoggingHook().after_context_created(SimpleNamespace(config_loader=loader))
    assert logging.getLogger().handlers == root_handlers


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"version": 1, "filters": {"f": {"()": "os.system"}}},
            r"'\(\)' factories are not allowed",
        ),
        (
            {"version": 1, "handlers": {"h": {"class": "shutil.rmtree"}}},
            r"logging.handlers.h: class 'shutil.rmtree' is not from",
        ),
    ],
)
def test_logging_configurations_may_not_name_foreign_code(config, message):
    with pytest.raises(ValueError, match=message):
        apply_logging_config(config)
