"""One all-to-all shuffle of Arrow blocks in Ray's object store, by a key the caller computes.

Ray Data's keyed repartition does not promise one block per partition (a partition may
arrive as several blocks, and ``map_batches`` works per block), and the stages here need
exactly that: a customer's whole history in one batch (features), every copy of a
transaction id together (ingest's uniqueness check), whole days in one file (ingest's
output). So the shuffle is explicit: one task per input block splits it into one piece
per partition; the caller then runs one task per partition over its pieces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from payments_ml.datasets.blocks import BlockInfo, block_info

# group_of(table, partitions, *args): each row's partition, integers in [0, partitions).
GroupOf = Callable[..., np.ndarray]


def shuffle(
    blocks: list[ray.ObjectRef],
    group_of: GroupOf,
    partitions: int,
    *args: Any,
    name: str = "shuffle_split",
) -> list[list[ray.ObjectRef]]:
    """Pieces of every block per partition: ``result[p]`` lists partition p's pieces, in
    block order (rows keep their order within a piece).

    Args:
        blocks: Arrow tables in the object store.
        group_of: ``group_of(table, partitions, *args)`` -> each row's partition.
        partitions: How many partitions.
        args: Passed on to ``group_of``.
        name: The split tasks' name in Ray's dashboard and timeline.
    """
    task = _split.options(num_returns=partitions, name=name)
    pieces = [task.remote(block, group_of, partitions, *args) for block in blocks]
    return by_partition(pieces, partitions)


def by_partition(pieces: list[Any], partitions: int) -> list[list[ray.ObjectRef]]:
    """The returns of split tasks (per task: ``partitions`` refs, or one ref for one
    partition) regrouped per partition, in task order."""
    if partitions == 1:
        pieces = [[piece] for piece in pieces]
    return [[p[i] for p in pieces] for i in range(partitions)]


def customer_groups(table: pa.Table, partitions: int) -> np.ndarray:
    """Partition of each row by ``customer_id``: Fibonacci hashing spreads sequential ids
    evenly over the partitions."""
    customer = table["customer_id"].to_numpy().astype(np.uint64)
    return ((customer * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) % np.uint64(partitions)


@ray.remote(num_returns=2)
def concat_partition(*tables: pa.Table) -> tuple[pa.Table, BlockInfo]:
    """One partition's pieces as one table, and what a Dataset needs to know of it
    (:func:`payments_ml.datasets.blocks.dataset_from_blocks`)."""
    table = pa.concat_tables(tables)
    return table, block_info(table)


def split(
    table: pa.Table, partitions: int, group_of: GroupOf = customer_groups, *args: Any
) -> list[pa.Table]:
    """``table``'s rows per partition, in their order (for a table already in this process)."""
    group = np.asarray(group_of(table, partitions, *args))
    if partitions <= np.iinfo(np.int16).max:
        group = group.astype(np.int16)  # numpy's stable sort of small integers: a radix sort
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(partitions + 1))
    return [table.take(order[bounds[i] : bounds[i + 1]]) for i in range(partitions)]


def split_returns(table: pa.Table, partitions: int, group_of: GroupOf, *args: Any) -> Any:
    """:func:`split` as a task with ``num_returns=partitions`` returns it (one table, not
    a tuple, for one partition)."""
    pieces = tuple(split(table, partitions, group_of, *args))
    return pieces if partitions > 1 else pieces[0]


@ray.remote
def _split(table: pa.Table, group_of: GroupOf, partitions: int, *args: Any) -> Any:
    return split_returns(table, partitions, group_of, *args)
