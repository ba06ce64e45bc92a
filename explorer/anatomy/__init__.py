"""A network's anatomy, computed from its modules: layer table, cost per stage, receptive
fields, the building block as a graph, and layer-by-layer alignment of two networks.

Everything runs on the meta device (shapes only, no weights), so it works for every
architecture and preset whether or not a checkpoint exists, and takes well under a second
for most networks.

One module per concept, each importing only those listed above it (and `models`); every
public name is re-exported here, so `from explorer import anatomy; anatomy.table(...)` and
`from explorer.anatomy import table` are the ways in:

* `fields`: receptive fields (`ReceptiveFields`, `RF`, `INF`), followed through the forward
  pass by a `TorchFunctionMode`.
* `layers`: the layer table, the service other modules use (`table`, `Table`, `Row`), folded
  to blocks by `group` (`max_depth`); `describe`, `fmt_shape` and `fmt_rf` write its cells.
* `staging`: stages (`stages`, `Stage`) and the names a learner uses for a network's parts (`part_names`,
  `CONTAINERS`).
* `graph`: the building block as a graph (`block_graph`, Graphviz DOT traced with torch.fx).
* `alignment`: layer-by-layer alignment of two tables (`align`, `Pair`, `comparable`,
  `align_counts`, `STATUS_DESIGN`).
* `display`: what the Anatomy page shows: display rows (`table_rows`, `stage_rows`, `rf_rows`,
  `align_rows`), its sentences (`cost_summary`, `rf_summary`, `blog_note`) and the facts it
  quotes (`BLOG_TOTALS`, `conv_biases_dropped`, `two_tower_params`, `PAIRS`).
"""
from __future__ import annotations

from explorer.anatomy.alignment import STATUS_DESIGN, Pair, align, align_counts, comparable
from explorer.anatomy.display import (
    BLOG_TOTALS, PAIRS, align_rows, biggest, blog_note, conv_biases_dropped, cost_summary, does_nothing,
    has_dips, rf_rows, rf_summary, stage_rows, table_rows, two_tower_params,
)
from explorer.anatomy.fields import INF, RF, ReceptiveFields
from explorer.anatomy.graph import block_graph
from explorer.anatomy.layers import Row, Table, describe, fmt_rf, fmt_shape, group, max_depth, table
from explorer.anatomy.staging import CONTAINERS, Stage, stages, part_names

__all__ = [
    # fields
    "INF", "RF", "ReceptiveFields",
    # layers
    "Row", "Table", "describe", "fmt_rf", "fmt_shape", "group", "max_depth", "table",
    # staging
    "CONTAINERS", "Stage", "stages", "part_names",
    # graph
    "block_graph",
    # alignment
    "STATUS_DESIGN", "Pair", "align", "align_counts", "comparable",
    # display
    "BLOG_TOTALS", "PAIRS", "align_rows", "biggest", "blog_note", "conv_biases_dropped", "cost_summary",
    "does_nothing", "has_dips", "rf_rows", "rf_summary", "stage_rows", "table_rows", "two_tower_params",
]
