"""The replay CLI's first contact: its help, and a scorer that is not there."""

from __future__ import annotations

import time

import pytest

from payments_ml import stream
from tests.conftest import free_port


def test_with_no_scorer_the_replay_says_so_in_one_line_and_touches_nothing(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(SystemExit) as stopped:
        stream.main(["--url", url, "--project-path", str(tmp_path / "no-project")])
    message = str(stopped.value.code)
    assert message.startswith(f"The scorer is not answering at {url} (ConnectionError)")
    assert "make run" in message and "\n" not in message
    assert time.monotonic() - started < 5  # refused at once, before any configuration


def test_help_names_the_command_and_its_defaults(capsys):
    with pytest.raises(SystemExit):
        stream.main(["--help"])
    shown = capsys.readouterr().out
    assert shown.startswith("usage: python -m payments_ml.stream")
    assert "(default: 50.0)" in shown and "(default: http://127.0.0.1:8000)" in shown
    assert "``" not in shown and "`kedro" not in shown  # no raw reStructuredText
