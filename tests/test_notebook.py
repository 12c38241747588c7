"""notebooks/walkthrough.ipynb: committed without outputs, and run on a small trained project."""

from __future__ import annotations

import json
from typing import Any

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from tests.conftest import PROJECT_ROOT, free_port
from tests.project import clean_env

NOTEBOOK = PROJECT_ROOT / "notebooks" / "walkthrough.ipynb"

# Run after the notebook's cells: what the notebook computed, for the assertions.
PROBE = """
import json

print(json.dumps({
    "raw_count": raw_count,
    "training_rows": len(training_set),
    "metrics": metrics.to_dict(),
    "champion": champion.version,
    "sample": sample,
    "api_answer": api_answer,
    "local_answer": local_answer,
}, default=str))
"""


def test_committed_notebooks_have_no_outputs():
    """Outputs hold data and machine paths; they are produced by running, not committed."""
    paths = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
    assert NOTEBOOK in paths
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{path.name}: cell {cell.get('id')} has outputs; clear them before "
                    "committing (Jupyter: Edit > Clear Outputs of All Cells)"
                )


@pytest.mark.slow
def test_walkthrough_runs_and_scores_in_process_without_a_scorer(trained_project, ray_session):
    """Every cell runs; what it shows matches the project's files and MLflow.

    Nothing listens at the scorer URL, so the notebook says so and scores in-process
    with the replicas' Scorer (the HTTP branch was checked by hand against
    `kedro run --pipelines serving`; starting Serve here would double this test's time).
    """
    project = trained_project
    (project / "notebooks").mkdir(exist_ok=True)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    scorer_url = f"http://127.0.0.1:{free_port()}"
    env = clean_env(  # the project's mlflow.yml decides, as in a user's kernel
        RAY_ADDRESS=ray_session.get_runtime_context().gcs_address,
        PAYMENTS_ML_SCORER_URL=scorer_url,
    )
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(project / "notebooks")}},
    )
    probe = nbformat.v4.new_code_cell(PROBE)
    notebook.cells.append(probe)
    with client.setup_kernel(env=env):  # the kernel is shut down on exit, also on failure
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
    shown = json.loads(_stdout(probe))

    raw = pd.read_parquet(project / "data/01_raw/transactions")
    evaluation = json.loads((project / "data/08_reporting/evaluation.json").read_text())
    assert shown["raw_count"] == len(raw)
    assert shown["training_rows"] == len(
        pd.read_parquet(project / "data/05_model_input/training_set")
    )
    for name in ("average_precision", "roc_auc"):
        assert shown["metrics"]["model"][name] == pytest.approx(
            evaluation["metrics"][f"test_{name}"], abs=1e-6
        )
        assert shown["metrics"]["baseline"][name] == pytest.approx(
            evaluation["metrics"][f"baseline_{name}"], abs=1e-6
        )
    assert str(shown["champion"]) == "1"
    cells = {cell.get("id"): cell for cell in notebook.cells}
    images = [o for o in cells["plots"].outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2

    assert shown["api_answer"] is None
    assert f"No healthy scorer at {scorer_url} (no answer)" in _stdout(cells["score-http"])
    assert "Scored in-process only" in _stdout(cells["score-local"])
    _assert_scored_with_the_stores_features(shown, raw, evaluation["thresholds"])


def _assert_scored_with_the_stores_features(
    shown: dict[str, Any], raw: pd.DataFrame, thresholds: dict[str, float]
) -> None:
    """The sample is the last day's first transaction a day later, with its history's counts."""
    last_day = raw["event_timestamp"].dt.normalize().max()
    first = raw[raw["event_timestamp"] >= last_day].nsmallest(1, "event_timestamp").iloc[0]
    assert shown["sample"]["transaction_id"] == f"walkthrough-{first['transaction_id']}"
    answer = shown["local_answer"]
    assert answer["transaction_id"] == shown["sample"]["transaction_id"]
    assert answer["model_version"] == "1"
    probability = answer["fraud_probability"]
    assert 0.0 <= probability <= 1.0
    expected_decision = (
        "decline"
        if probability >= thresholds["decline"]
        else "review"
        if probability >= thresholds["review"]
        else "approve"
    )
    assert answer["decision"] == expected_decision
    # Scored the day after the data ends, at D = midnight after the last day: the windows
    # hold the customer's transactions of [D - w days, D) (none of D yet).
    midnight = last_day + pd.Timedelta(days=1)
    history = raw[raw["customer_id"] == first["customer_id"]]
    month = history[history["event_timestamp"] >= midnight - pd.Timedelta(days=30)]
    features = answer["features_used"]
    assert features["customer_tx_count_30d"] == len(month)
    assert features["customer_amount_sum_30d"] == pytest.approx(month["amount"].sum())
    assert features["customer_tx_count_1d"] == int((history["event_timestamp"] >= last_day).sum())


def _stdout(cell: Any) -> str:
    return "".join(
        o["text"] for o in cell.outputs if o["output_type"] == "stream" and o["name"] == "stdout"
    )
