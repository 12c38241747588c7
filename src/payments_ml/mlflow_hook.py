"""kedro-mlflow's hook, writing each node's parameters in one call, and reopening the
run before a node only where it is not open.

kedro-mlflow logs the parameters a node takes one ``mlflow.log_param`` at a time, each
its own write to the tracking store, and again for every later node that takes the same
parameters: a `daily` night wrote about 320 parameters in as many SQLite transactions,
0.4 s of a 3.5 s night (cProfile, tests/pipelines/daily/test_seven_nights.py). This hook
is kedro-mlflow's own, with two changes: the parameters of a node that its run has not
logged yet (or holds with another value, which MLflow refuses as kedro-mlflow's would)
are written in one ``mlflow.log_params`` batch (values longer than MLflow allows keep
kedro-mlflow's strategy, ``tracking.params.long_params_strategy`` in mlflow.yml); and
the run is reopened before a node only in a thread where it is not the active run.

settings.py registers it in place of the plugin's (``DISABLE_HOOKS_FOR_PLUGINS``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook as KedroMlflowHook
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH


def run_name(run_params: dict[str, Any], today: dt.date | None = None) -> str:
    """What a run did: ``training 2025-06-29``, ``daily 2025-05-01``, ``kedro run
    2025-06-29`` (every stage); the day is the run's ``run_date`` (runtime parameter),
    else today (UTC)."""
    names = run_params.get("pipeline_names") or run_params.get("pipeline_name") or []
    names = [names] if isinstance(names, str) else [n for n in names if n != "__default__"]
    extra = run_params.get("runtime_params") or run_params.get("extra_params") or {}
    day = extra.get("run_date") or (today or dt.datetime.now(dt.UTC).date()).isoformat()
    return f"{'+'.join(sorted(names)) or 'kedro run'} {day}"


class MlflowHook(KedroMlflowHook):
    """kedro-mlflow's hook; a node's new parameters go to MLflow in one batch, and a run
    is named after what it did (:func:`run_name`, unless mlflow.yml names it), with its
    runner tag the runner's class name (kedro-mlflow writes the object's repr)."""

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[str, Any] = {}
        self._logged: dict[str, str] = {}  # of the run in self._logged_run
        self._logged_run: str | None = None

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        params = dict(run_params)
        runner = str(params.get("runner") or "")
        if " object at 0x" in runner:  # Kedro passes an instance's repr
            params["runner"] = runner.lstrip("<").split(" object at")[0].rsplit(".", 1)[-1]
        elif runner in ("", "None"):  # none given: KedroSession.run's default
            params["runner"] = "SequentialRunner"
        run = self.mlflow_config.tracking.run
        configured = run.name
        run.name = configured or run_name(run_params)
        try:
            super().before_pipeline_run(run_params=params, pipeline=pipeline, catalog=catalog)
        finally:
            run.name = configured

    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict, is_async: bool) -> None:
        # kedro-mlflow reopens the run before every node, for nodes run in another thread
        # (which have no active run). With mlflow.yml's `nested: true` each reopening
        # reads the run twice, writes its status and stacks it again, even where the run
        # is this thread's active run already: 50 ms a node, a second of a `daily` night
        # (cProfile). Reopened here only where this thread's active run is not ours.
        active = mlflow.active_run()
        run_id = self.run_id
        if active is not None and active.info.run_id == run_id:
            self.run_id = None  # kedro-mlflow's sign to skip the reopening
        try:
            super().before_node_run(node=node, catalog=catalog, inputs=inputs, is_async=is_async)
        finally:
            self.run_id = run_id
        pending, self._pending = self._pending, {}
        if self._logged_run != self.run_id:
            self._logged, self._logged_run = {}, self.run_id
        fresh = {k: v for k, v in pending.items() if self._logged.get(k) != str(v)}
        if fresh:
            mlflow.log_params(fresh)
            self._logged.update({k: str(v) for k, v in fresh.items()})

    def _log_param(self, name: str, value: Any) -> None:
        """kedro-mlflow's per-parameter write, collected for ``before_node_run``."""
        if len(str(value)) > MAX_PARAM_VAL_LENGTH:
            super()._log_param(name, value)
        else:
            self._pending[name] = value


mlflow_hook = MlflowHook()
