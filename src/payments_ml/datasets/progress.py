"""Waiting for Ray tasks with progress: a live bar on a terminal, log lines elsewhere.

``gather(refs, "days generated")`` is ``ray.get(refs)`` (results in input order) that
shows ``k/N days generated`` as each task finishes: a tqdm bar on stderr when it is a
terminal (tqdm comes with Ray), and a log line every few seconds otherwise (CI, a
scheduler's task log, the run's log file), so a long step never sits silent.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import ray

logger = logging.getLogger(__name__)


def gather(refs: list[ray.ObjectRef], what: str, every_s: float = 5.0) -> list[Any]:
    """``ray.get(refs)``, in order, reporting ``k/N <what>`` as the tasks finish."""
    from tqdm import tqdm  # noqa: PLC0415 (a Ray dependency)

    done: dict[ray.ObjectRef, Any] = {}
    remaining = list(refs)
    start = last_log = time.monotonic()
    with tqdm(
        total=len(refs), desc=what, unit="", leave=False, disable=not sys.stderr.isatty()
    ) as bar:
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1, timeout=every_s)
            done.update(zip(ready, ray.get(ready), strict=True))
            bar.update(len(ready))
            if bar.disable and remaining and time.monotonic() - last_log >= every_s:
                last_log = time.monotonic()
                logger.info("  %d/%d %s (%.0f s)", len(done), len(refs), what, last_log - start)
    return [done[ref] for ref in refs]
