"""Training: Ray Tune's search at the default budget, and LightGBM training throughput.

The data is the `make run` dataset (about 1 M transactions, features built by the
features pipeline) split as the training pipeline splits it. Tuning runs the default
budget on the local Ray cluster; its baseline is the same sampled configurations
trained one after another in one process, each to its early stop (no Ray, no ASHA).
Throughput: the refit of the best configuration (`fit_booster` at the best trial's
early-stopped round count) beside a plain `lightgbm.train` over the same rows and rounds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import lightgbm as lgb
import pandas as pd

from benchmarks.bench_features import generate_raw, run_ray
from benchmarks.common import load_params, print_table, start_ray, timer
from payments_ml.pipelines.training import nodes
from payments_ml.training.trainer import booster_params, fit_booster, tune_booster


def main(quick: bool = False) -> None:
    startup = start_ray()
    params = load_params("training")
    root = Path(tempfile.mkdtemp(prefix="bench-training-"))
    try:
        generate_raw(1_000 if quick else 10_000, root / "raw")
        run_ray(root / "raw", root / "training_set")
        training_set = pd.read_parquet(root / "training_set")
        train, valid, _, _ = nodes.split_transactions(training_set, pd.DataFrame(), params)
        data = nodes._training_data(train, valid)
        if quick:
            params |= {"num_samples": 2, "num_boost_round": 60}
        tuned = tune_booster(data, params, root / "tune")
        with timer() as sequential:
            for trial in tuned["trial_results"]:
                fit_booster(trial["config"], data, params, threads=params["cpus_per_trial"])
        tune_rows = [
            [
                tuned["trials"],
                tuned["seconds"],
                tuned["trials_per_minute"],
                sequential["seconds"],
                sequential["seconds"] / tuned["seconds"],
            ]
        ]

        threads = params["refit_threads"]
        rounds = tuned["best_iteration"]
        with timer() as ours:
            fit_booster(tuned["config"], data, params, threads=threads, rounds=rounds)
        with timer() as plain:
            lgb.train(
                booster_params(tuned["config"], params, threads),
                lgb.Dataset(data.x_train, data.y_train, feature_name=data.features),
                num_boost_round=rounds,
            )
        rows = len(data.y_train)
        fit_rows = [
            [
                rows,
                rounds,
                ours["seconds"],
                rows / ours["seconds"],
                plain["seconds"],
                rows / plain["seconds"],
                plain["seconds"] / ours["seconds"],
            ]
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(
        f"training: Ray Tune search, {params['num_samples']} trials, {os.cpu_count()} CPUs "
        f"(Ray start-up {startup:.1f} s, not included)",
        ["trials", "tune s", "trials/min", "sequential s", "speed-up"],
        tune_rows,
    )
    print_table(
        f"training: refit of the best configuration, {threads} LightGBM threads",
        ["train rows", "rounds", "ours s", "ours rows/s", "plain s", "plain rows/s", "ratio"],
        fit_rows,
    )


if __name__ == "__main__":
    main()
