"""gather: ray.get in order, with progress while the tasks run."""

from __future__ import annotations

import logging
import time


def test_results_come_in_input_order_and_a_silent_wait_is_reported(ray_session, caplog):
    from payments_ml.datasets.progress import gather  # noqa: PLC0415

    @ray_session.remote
    def late(seconds: float, value: int) -> int:
        time.sleep(seconds)
        return value

    refs = [late.remote(0.6, 0), late.remote(0.0, 1), late.remote(0.3, 2)]
    with caplog.at_level(logging.INFO, logger="payments_ml.datasets.progress"):
        assert gather(refs, "things done", every_s=0.1) == [0, 1, 2]
    reported = [r.getMessage() for r in caplog.records]
    assert reported and all("/3 things done (" in line for line in reported)
