"""The service graph: which service calls which, how often, how many calls failed, how slow they were.

Two sources of edges: a span in one service whose child span is in another (both sides instrumented), and a
client or producer span with no child in another service but naming its peer (``peer.service``, else
``db.system``, else ``server.address`` / ``net.peer.name``): an uninstrumented dependency such as a database
or a third-party API. The store hands the calls over already summed per service pair and latency bin
(``Store.calls``; ``spyglass.store.call_rollups`` says how they are made), so an hour of ten million spans is
a few thousand rows here.

Stored spans are a sample: each call counts by its span's ``sample_weight`` (the traces it stands for, times
what its service's head sampling dropped), so call and error counts estimate all traffic, and the p99 is the
weighted one, within the latency sketch's 0.5%.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.sketch import grouped_quantiles

EDGE_SCHEMA = pa.schema(
    [
        pa.field("parent", pa.string()),
        pa.field("child", pa.string()),
        pa.field("calls", pa.int64()),
        pa.field("errors", pa.int64()),
        pa.field("p99_ms", pa.float64()),
        pa.field("uninstrumented", pa.bool_()),
    ]
)


def dependency_edges(calls: pa.Table) -> pa.Table:
    """``parent, child, calls, errors, p99_ms, uninstrumented`` per service pair, busiest first, from
    ``Store.calls`` rows (a pair is uninstrumented when none of its calls had an instrumented child)."""
    pairs = calls.group_by(["parent", "child"], use_threads=False).aggregate(
        [("calls", "sum"), ("errors", "sum"), ("uninstrumented", "all")]
    )
    if pairs.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    pair_keys = pc.binary_join_element_wise(pairs.column("parent"), pairs.column("child"), "\x00")
    row_keys = pc.binary_join_element_wise(calls.column("parent"), calls.column("child"), "\x00")
    group = pc.index_in(row_keys, value_set=pair_keys).to_numpy(zero_copy_only=False)
    ids, _, values, _ = grouped_quantiles(
        group,
        calls.column("bin").to_numpy(zero_copy_only=False),
        calls.column("calls").to_numpy(zero_copy_only=False),
        (0.99,),
    )
    p99_ms = np.full(pairs.num_rows, np.nan)
    p99_ms[ids] = np.round(values[:, 0] / 1e6, 6)  # ns resolution, as durations are
    edges = pa.table(
        {
            "parent": pairs.column("parent"),
            "child": pairs.column("child"),
            "calls": pc.cast(
                pc.round(pairs.column("calls_sum"), round_mode="half_towards_infinity"), pa.int64()
            ),
            "errors": pc.cast(
                pc.round(pairs.column("errors_sum"), round_mode="half_towards_infinity"), pa.int64()
            ),
            "p99_ms": pa.array(p99_ms, pa.float64(), from_pandas=True),
            "uninstrumented": pairs.column("uninstrumented_all"),
        },
        schema=EDGE_SCHEMA,
    )
    return edges.sort_by([("calls", "descending"), ("parent", "ascending"), ("child", "ascending")])
