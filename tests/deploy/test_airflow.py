"""deploy/airflow's DAGs under a real Airflow 3, in its own virtual environment.

Airflow comes from PyPI (deploy/airflow/requirements.txt, pinned by constraints.txt)
into a venv cached outside the repository, keyed by what it installs; the DAG folder
must import with no errors. From the session's small-world history (``daily_history``,
tests/nights.py: 60 days), `airflow dags test payments_nightly` runs three consecutive
nights, and the project's files equal those the same history holds after `kedro run
--pipelines daily` for the same days (the session's copy after its third night). Then
`airflow dags test payments_training` trains against a local `mlflow server` (`--env
cluster`), and a night after a gap fails and writes its critical alert to the alert log
the dashboard reads.

Everything is a subprocess except the history and its daily nights (in this process, on
the session's Ray cluster, which every `kedro run` joins). Independent chains run side
by side, each Airflow chain with its own home (no SQLite database is shared): the
Airflow venv and database beside the history; then the DAG's three nights, the failing
night, and the training chain beside the daily nights. The training chain trains a copy
of the daily pipeline's project after the same three nights (which the nights are
checked equal to), once its Airflow database holds the third night as done (`dags test
--mark-success-pattern night`, Airflow's way to stand in for an upstream DAG), so its
sensor waits on a real nightly run record.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from payments_ml.config import project_settings
from payments_ml.monitoring.alerts import active_alerts, read_alerts
from tests.cluster.servers import start_mlflow_server, stop_process_group, wait_for_mlflow
from tests.conftest import PROJECT_ROOT, free_port
from tests.nights import AFTER, NIGHT_DAYS
from tests.project import clean_env, read_dataset

pytestmark = pytest.mark.slow

DAGS = PROJECT_ROOT / "deploy" / "airflow"
NIGHTS = NIGHT_DAYS[:AFTER]
TRAINING_DAY = str(dt.date.fromisoformat(NIGHTS[-1]) + dt.timedelta(days=1))  # trains to NIGHTS[-1]
GAP_NIGHT = str(dt.date.fromisoformat(NIGHTS[-1]) + dt.timedelta(days=2))  # a night after a gap
TIMEOUT = 600


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "payments-ml"


def airflow_venv() -> Path:
    """Airflow's own venv, built once per requirement, constraints and Python version
    (with the project venv's uv) and reused by later sessions; a lock serialises builds.

    Compiled to bytecode as it is built: with PYTHONDONTWRITEBYTECODE (CI sets it) every
    `airflow` command otherwise compiled its 1,800 modules again (3 of its 10 s of CPU)."""
    requirement = (DAGS / "requirements.txt").read_text()
    constraints = (DAGS / "constraints.txt").read_text()
    key = hashlib.sha256(f"{requirement}{constraints}{sys.version_info[:2]}".encode()).hexdigest()
    version = next(line for line in requirement.splitlines() if line.startswith("apache-airflow"))
    venv = _cache_root() / f"airflow-{version.split('==')[-1]}-{key[:12]}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / ".airflow.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".complete").exists():
            if not (venv / ".bytecode").exists():  # built before it was compiled
                _compile(venv)
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a build cut short
        uv = str(Path(sys.executable).with_name("uv"))
        base = Path(sys.base_prefix) / "bin" / "python{}.{}".format(*sys.version_info[:2])
        for command in (
            [uv, "venv", "--quiet", "--python", str(base), str(venv)],
            [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python",
             str(venv / "bin" / "python"), "-r", str(DAGS / "requirements.txt"),
             "-c", str(DAGS / "constraints.txt")],
        ):  # fmt: skip
            done = subprocess.run(
                command, check=False, capture_output=True, text=True, timeout=TIMEOUT
            )
            assert done.returncode == 0, done.stderr[-3000:]
        (venv / ".bytecode").touch()
        (venv / ".complete").touch()
    return venv


def _compile(venv: Path) -> None:
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # check=False: a file that does not compile is one Airflow never imports.
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j0", site],
        check=False, capture_output=True, timeout=TIMEOUT,
    )  # fmt: skip
    (venv / ".bytecode").touch()


def _airflow(
    venv: Path, home: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess:
    """`airflow <args>` with its home, this repository's DAG folder and ``env``."""
    return subprocess.run(
        [str(venv / "bin" / "airflow"), *args],
        check=False,
        cwd=home,
        env=clean_env(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            PAYMENTS_ML_PYTHON=sys.executable,
            PAYMENTS_ML_START_DATE=NIGHTS[0],
            PAYMENTS_ML_RETRIES="0",
        )
        | env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


_DAGBAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {
    d.dag_id: {"tasks": [t.task_id for t in d.topological_sort()], "catchup": d.catchup,
               "retries": sorted({t.retries for t in d.tasks}),
               "callbacks": all(t.on_failure_callback for t in d.tasks)}
    for d in bag.dags.values()}}))
"""


def _prepare_airflow(home: Path, *spares: Path) -> dict:
    """Build (or reuse) the venv, create the metadata database (or copy the empty one an
    earlier session migrated beside the venv), copy it to each of ``spares`` and load the
    DAG folder; returns the venv and the folder's DagBag."""
    started = time.perf_counter()
    venv = airflow_venv()
    built = time.perf_counter() - started
    for folder in (home, *spares):
        folder.mkdir()
    migrated = venv / "airflow-migrated.db"  # the schema only: no DAG, no run
    if migrated.exists():
        shutil.copy(migrated, home / "airflow.db")
    else:
        done = _airflow(venv, home, {}, "db", "migrate")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        partial = migrated.with_suffix(f".{os.getpid()}")
        shutil.copy(home / "airflow.db", partial)
        partial.replace(migrated)  # atomic: another session copies all of it or none
    for spare in spares:
        shutil.copy(home / "airflow.db", spare / "airflow.db")
    bag = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _DAGBAG, str(DAGS)],
        check=False,
        env=clean_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert bag.returncode == 0, bag.stderr[-3000:]
    return {
        "venv": venv,
        "venv_s": round(built, 1),
        "dagbag": json.loads(bag.stdout.splitlines()[-1]),
    }


def _dags_test(venv, home, env, dag_id, day, *extra) -> subprocess.CompletedProcess:
    return _airflow(venv, home, env, "dags", "test", dag_id, day, *extra)


def _nights(venv: Path, home: Path, env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    runs = []
    for night in NIGHTS:
        runs.append(_dags_test(venv, home, env, "payments_nightly", night))
        if runs[-1].returncode:
            break
    return runs


def _training(
    venv: Path, home: Path, env: dict[str, str], server, project: Future
) -> subprocess.CompletedProcess:
    """The third night recorded as done in ``home``'s database, then the training DAG
    once ``project`` (a Future of the project to train) and the MLflow server are ready."""
    seeded = _dags_test(
        venv, home, env, "payments_nightly", NIGHTS[-1], "--mark-success-pattern", "night"
    )
    assert seeded.returncode == 0, _log(seeded)[-3000:]
    wait_for_mlflow(server)
    env = env | {"PAYMENTS_ML_PROJECT": str(project.result(timeout=TIMEOUT))}
    return _dags_test(venv, home, env, "payments_training", TRAINING_DAY)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    yield server
    stop_process_group(server.process)


@pytest.fixture(scope="module")
def airflow_runs(request, tmp_path_factory, ray_session, mlflow_server):
    """Everything the checks read: the projects, the Airflow runs and their timings."""
    tmp = tmp_path_factory.mktemp("airflow")
    address = ray_session.get_runtime_context().gcs_address
    started, times = time.perf_counter(), {}
    with ThreadPoolExecutor(4) as pool:
        prepared = pool.submit(
            _prepare_airflow, tmp / "home", tmp / "home-failing", tmp / "home-training"
        )
        history = request.getfixturevalue("daily_history")  # built meanwhile, if not yet
        nightly, gap = tmp / "nightly", tmp / "gap"  # the DAG's nights; a night after a gap
        shutil.copytree(history, nightly)
        shutil.copytree(history, gap)
        times["history_s"] = round(time.perf_counter() - started, 1)
        airflow = prepared.result()
        times["venv_s"], venv = airflow["venv_s"], airflow["venv"]
        times["ready_s"] = round(time.perf_counter() - started, 1)

        ray = {"RAY_ADDRESS": address}
        failing = pool.submit(
            _dags_test, venv, tmp / "home-failing", ray | {"PAYMENTS_ML_PROJECT": str(gap)},
            "payments_nightly", GAP_NIGHT,
        )  # fmt: skip
        nights = pool.submit(
            _nights, venv, tmp / "home", ray | {"PAYMENTS_ML_PROJECT": str(nightly)}
        )
        trained = Future()
        cluster = ray | {
            "PAYMENTS_ML_PROJECT": str(tmp / "trained"),  # the seeding night's alerts
            "MLFLOW_TRACKING_URI": mlflow_server.uri,
            # conf/cluster/feast.yml requires it; training opens no online store.
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        }
        training = pool.submit(
            _training, venv, tmp / "home-training", cluster, mlflow_server, trained
        )
        try:
            daily = request.getfixturevalue("daily_nights")["after"]  # the reference, meanwhile
            trained.set_result(shutil.copytree(daily, tmp / "trained"))
        except BaseException as error:  # the training chain must not wait for ever
            trained.set_exception(error)
            raise
        nights = nights.result()
        times["nights_s"] = round(time.perf_counter() - started, 1)
        training = training.result()
        times["training_s"] = round(time.perf_counter() - started, 1)
        failing = failing.result()
    times["total_s"] = round(time.perf_counter() - started, 1)
    sys.stdout.write(f"\nAirflow test, seconds: {json.dumps(times)}\n")  # pytest -s
    return {
        "dagbag": airflow["dagbag"], "nightly": nightly, "daily": daily, "gap": gap,
        "nights": nights, "training": training, "failing": failing,
    }  # fmt: skip


def _log(run: subprocess.CompletedProcess) -> str:
    return run.stdout + run.stderr


def test_the_dag_folder_imports_without_errors(airflow_runs):
    bag = airflow_runs["dagbag"]
    assert bag["errors"] == {}
    assert bag["dags"]["payments_nightly"]["tasks"] == ["night"]
    assert bag["dags"]["payments_training"]["tasks"] == ["wait_for_nightly", "train", "rollout"]
    assert bag["dags"]["payments_nightly"]["catchup"] is True
    assert all(dag["callbacks"] for dag in bag["dags"].values())


def _succeeded(run: subprocess.CompletedProcess, dag_id: str, tasks: list[str]) -> None:
    log = _log(run)
    assert run.returncode == 0, log[-5000:]
    finished = [line for line in log.splitlines() if "DagRun Finished" in line]
    assert finished and f"dag_id={dag_id}" in finished[-1] and "state=success" in finished[-1]
    for task in tasks:  # ran, not only marked (a date before the start would skip them)
        assert f"end task task_id={task} " in log, f"{task} did not run:\n{log[-3000:]}"


def test_three_nights_ran_every_stage_for_their_day(airflow_runs):
    assert len(airflow_runs["nights"]) == len(NIGHTS)
    for night, run in zip(NIGHTS, airflow_runs["nights"], strict=True):
        _succeeded(run, "payments_nightly", ["night"])
        assert f'--pipelines data_gen,features,monitoring --params "run_date={night}"' in _log(run)


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("raw_transactions", ["transaction_id"]),
        ("labels", ["transaction_id", "reported_at"]),
        ("transaction_labels", ["transaction_id"]),
        ("training_set", ["transaction_id"]),
        ("customer_snapshots", ["customer_id", "snapshot_ts"]),
        ("merchant_snapshots", ["merchant_id", "snapshot_ts"]),
        ("data_quality", ["event_date"]),
    ],
)
def test_the_nights_equal_what_the_daily_pipeline_writes(airflow_runs, name, keys):
    assert [r.returncode for r in airflow_runs["nights"]] == [0] * len(NIGHTS)
    dag, daily = (read_dataset(airflow_runs[side], name, keys) for side in ("nightly", "daily"))
    assert len(dag) > 0
    pd.testing.assert_frame_equal(dag, daily, check_exact=True)
    if "event_date" in dag.columns:
        assert str(dag["event_date"].max()) == NIGHTS[-1]


def test_the_online_store_equals_the_daily_pipelines(airflow_runs):
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    raw = read_dataset(airflow_runs["daily"], "raw_transactions", ["transaction_id"])
    online = {}
    for side in ("nightly", "daily"):
        store = fs.open_store(project_settings(airflow_runs[side])["feast"])
        online[side] = fs.read_online(
            store, "customer_snapshot", "customer_id", raw["customer_id"].unique()
        )
    assert len(online["daily"]) > 0
    pd.testing.assert_frame_equal(online["nightly"], online["daily"])


def test_the_training_dag_registers_and_rolls_out_on_the_tracking_server(
    airflow_runs, mlflow_server
):
    from mlflow import MlflowClient  # noqa: PLC0415

    run = airflow_runs["training"]
    _succeeded(run, "payments_training", ["wait_for_nightly", "train", "rollout"])
    assert f'--env cluster --params "run_date={NIGHTS[-1]},training.test_end={NIGHTS[-1]}"' in _log(
        run
    )
    client = MlflowClient(mlflow_server.uri)
    champion = client.get_model_version_by_alias("fraud_model", "champion")
    rollout = [line for line in _log(run).splitlines() if '"champion_version"' in line]
    assert rollout and f'"champion_version": "{champion.version}"' in rollout[-1]
    trained = client.get_run(champion.run_id)
    assert trained.data.params.get("training.test_end") == NIGHTS[-1]


def test_a_failed_task_writes_a_critical_alert_the_dashboard_shows(airflow_runs):
    run = airflow_runs["failing"]
    assert run.returncode != 0
    assert "the last night built is" in _log(run)  # the project refused the gap
    path = project_settings(airflow_runs["gap"])["alerts_path"]
    alert = read_alerts(path)[-1]
    assert alert["severity"] == "critical" and alert["metric"] == "scheduled_task_failure"
    assert alert["day"] == GAP_NIGHT
    context = alert["context"]
    assert (context["dag_id"], context["task_id"], context["try_number"]) == (
        "payments_nightly", "night", 1,
    )  # fmt: skip
    assert context["logical_date"].startswith(GAP_NIGHT)
    assert "/dags/payments_nightly/runs/" in context["log_url"]
    assert "tasks/night" in context["log_url"]
    assert alert["message"].startswith(f"payments_nightly.night failed for {GAP_NIGHT}")
    assert active_alerts(path) == [alert]  # what the dashboard lists
