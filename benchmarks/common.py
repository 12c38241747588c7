"""Shared helpers: timing, the Ray session of a benchmark, result tables."""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from payments_ml.config import load_parameters

ROOT = Path(__file__).resolve().parents[1]


def load_params(name: str) -> dict[str, Any]:
    return copy.deepcopy(load_parameters(ROOT)[name])


@contextlib.contextmanager
def timer() -> Iterator[dict[str, float]]:
    result: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield result
    finally:
        result["seconds"] = time.perf_counter() - start


def start_ray(num_cpus: int | None = None) -> float:
    """Start a local Ray cluster with conf/base/ray.yml's Data settings; returns seconds."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray  # noqa: PLC0415

    from payments_ml.hooks import configure_ray_data  # noqa: PLC0415

    if ray.is_initialized():  # `python -m benchmarks` runs every benchmark in one process
        ray.shutdown()
    with open(ROOT / "conf/base/ray.yml") as f:
        data_settings = yaml.safe_load(f)["ray"].get("data") or {}
    with timer() as t:
        ray.init(
            address="local",  # a fresh cluster, even when `make run` left one running
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=4 * 1024**3,
        )
        configure_ray_data(data_settings | {"enable_progress_bars": False})
    return t["seconds"]


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [header, *[[_fmt(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print(
            "  ".join(v.rjust(w) if j else v.ljust(w) for j, (v, w) in enumerate(zip(row, widths)))
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
