"""Kedro datasets of the monitoring pipeline (this module is the only one importing Kedro).

- :class:`AlertLogDataset`: the append-only JSON-lines alert log; saving appends.
- :class:`JSONStateDataset`: a small JSON memory between runs; empty before the first.
- :class:`ParquetLogDataset`: the scorer's log, opened lazily
  (:class:`payments_ml.datasets.ParquetFilesDataset` under its earlier name).
"""

from __future__ import annotations

import json
import uuid
from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io import AbstractDataset, DatasetError

from payments_ml.datasets.parquet_files import ParquetFilesDataset
from payments_ml.monitoring.alerts import append_alerts, read_alerts

ParquetLogDataset = ParquetFilesDataset  # the name catalogs used first


class AlertLogDataset(AbstractDataset[list[dict[str, Any]], list[dict[str, Any]]]):
    """The alert log: ``save`` appends the lines, ``load`` returns every line, oldest first.

    Example catalog entry::

        alerts:
          type: payments_ml.monitoring.datasets.AlertLogDataset
          filepath: ${globals:paths.alerts}
    """

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        """Create the dataset.

        Args:
            filepath: The JSON-lines file (local or an fsspec URL whose file system appends).
            metadata: Free-form metadata (Kedro-Viz shows it).
        """
        self._filepath = filepath
        self.metadata = metadata

    def load(self) -> list[dict[str, Any]]:
        """Every alert line of the log (none when it does not exist yet)."""
        return read_alerts(self._filepath)

    def save(self, data: list[dict[str, Any]]) -> None:
        """Append ``data`` (alert lines) to the log."""
        if not isinstance(data, list):
            raise DatasetError(
                f"AlertLogDataset at {self._filepath} saves a list of alert lines, got "
                f"{type(data).__name__}"
            )
        append_alerts(self._filepath, data)

    def _exists(self) -> bool:
        fs, path = fsspec.core.url_to_fs(self._filepath)
        return fs.exists(path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath}


class JSONStateDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """A JSON object kept between runs: ``{}`` before the first save, replaced atomically.

    Read under one catalog name and written under another (a node cannot have the same
    dataset as input and output), both pointing at the same file.
    """

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        """Create the dataset.

        Args:
            filepath: The JSON file (local or fsspec URL).
            metadata: Free-form metadata (Kedro-Viz shows it).
        """
        self._filepath = filepath
        self._fs, self._path = fsspec.core.url_to_fs(filepath)
        self.metadata = metadata

    def load(self) -> dict[str, Any]:
        """The saved object, or ``{}`` when nothing was saved yet."""
        if not self._fs.exists(self._path):
            return {}
        with self._fs.open(self._path, "r") as f:
            return json.load(f)

    def save(self, data: dict[str, Any]) -> None:
        """Write to a temporary file, then move it over the old one."""
        parent = str(PurePosixPath(self._path).parent)
        self._fs.makedirs(parent, exist_ok=True)
        staging = f"{parent}/.{PurePosixPath(self._path).name}.{uuid.uuid4().hex[:8]}"
        with self._fs.open(staging, "w") as f:
            json.dump(data, f, indent=2)
        self._fs.mv(staging, self._path)

    def _exists(self) -> bool:
        return self._fs.exists(self._path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath}
