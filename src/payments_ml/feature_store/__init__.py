"""Feast definitions as code and the project's access to the feature store.

Importing Feast takes seconds; only code that talks to the store imports this package.

Feast decorates its definition classes with typeguard's ``@typechecked``, which rewrites
and recompiles each decorated function's source at import: 2.3 of the 3.4 s that
``import feast`` took on 2 cores, paid by every process that touches the store (each
`kedro run`, each scorer replica, each Ray worker reading the online store). Feast is
imported here with that decorator as the identity, as typeguard itself does under
``python -O``: Feast's classes are the same, minus the re-check of their arguments'
types on each call (the project's definitions are built and tested in one place,
``payments_ml.feature_store.views``). Only the import is patched; typeguard is restored
after it, for any other user in the process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def _typeguard_off() -> Iterator[None]:
    import typeguard  # noqa: PLC0415

    checked = typeguard.typechecked

    def unchecked(target=None, **_options):
        return target if target is not None else unchecked

    typeguard.typechecked = unchecked
    try:
        yield
    finally:
        typeguard.typechecked = checked


with _typeguard_off():
    import feast  # noqa: F401
    import feast.infra.online_stores.sqlite  # noqa: F401 (the local online store's module)
