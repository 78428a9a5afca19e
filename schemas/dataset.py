"""A dataset of Beamline: its contract, and what the job and the tools derive from it.

A dataset module (``datasets/<name>.py``) declares one ``Dataset`` and binds its row
types under their own names (Beam pickles them by reference); the registry
(``datasets``) lists the modules.  Everything else — the graph's rows and keys, the
tables, the Parquet outputs, the reconciliation's terms — derives from the contract.
The record maker is the generator's part (``tools.generator`` calls it with a seeded
``random.Random`` and Faker): a dataset module never imports Faker itself.
"""

from __future__ import annotations

import dataclasses
import functools
import typing

from schemas.contract import Contract, PaneRow, RowBuilder
from schemas.tables import DatasetTables

__all__ = ["Dataset", "RecordMaker"]


class RecordMaker(typing.Protocol):
    """Makes the generator's original record ``seq`` at ``event_ms``: ``(key, record)``.

    ``rng`` is a seeded ``random.Random`` and ``fake`` a seeded Faker; the same
    arguments give the same record.  Built once per batch by ``Dataset.new_maker``.
    """

    def __call__(self, seq: int, event_ms: int, run_id: str) -> tuple[str, dict]: ...


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A contract plus the generator's record maker.

    Attributes:
      contract: the declaration everything derives from.
      new_maker: ``(rng, fake, start_ms) -> RecordMaker``: the generator's state for one
        batch (pools of users, content, …) and the function that makes each record.
    """

    contract: Contract
    new_maker: typing.Optional[typing.Callable[..., RecordMaker]] = None

    @property
    def name(self) -> str:
        return self.contract.name

    @functools.cached_property
    def tables(self) -> DatasetTables:
        return DatasetTables.of(self.contract)

    @functools.cached_property
    def to_row(self) -> RowBuilder:
        """Valid event → main-table row (``NormaliseEvents``' ``to_row``)."""
        return RowBuilder(self.contract)

    @functools.cached_property
    def to_pane_row(self) -> PaneRow:
        """One pane of the aggregate → its row (``CountPerWindow``'s ``to_row``)."""
        return PaneRow(self.contract.aggregate_row_type())

    def parquet_outputs(self) -> tuple[str, ...]:
        """The Parquet outputs, each a folder under the run's output prefix: the main
        table's, the aggregate's and the dead letters' (``dead_letters``)."""
        return (self.tables.main.name, self.tables.aggregate.name, "dead_letters")
