"""A dataset of Beamline: its contract, and what the job and the tools derive from it.

A dataset module (``datasets/<name>.py``) declares one ``Dataset`` and binds its row
types under their own names (Beam pickles them by reference); the registry
(``datasets``) lists the modules.  Everything else — the graph's rows and keys, the
tables, the Parquet outputs, the reconciliation's terms — derives from the contract.
The record maker is the generator's part (``tools.event_producer`` calls it with a seeded
``random.Random`` and Faker): a dataset module never imports Faker itself.
"""

from __future__ import annotations

import dataclasses
import functools
import typing

from schemas.contract import Contract
from schemas.normalise import RowBuilder
from schemas.rows import GroupKey, Measures, PaneRow, PartitionOf
from schemas.tables import DatasetTables

__all__ = ["Dataset", "Mutation", "RecordMaker"]


class RecordMaker(typing.Protocol):
    """Makes the generator's original record ``seq`` at ``event_ms`` (a fresh dict,
    safe to mutate).  Built once per batch by ``Dataset.new_maker(rng, fake, users,
    start_ms)`` from a seeded ``random.Random`` and a seeded Faker: the same arguments
    give the same records."""

    def __call__(self, seq: int, event_ms: int, run_id: str) -> dict: ...


# A fault that makes a valid record break the contract, in place.
Mutation = typing.Callable[[dict], typing.Any]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A contract plus what the generator needs to make its records.

    Attributes:
      contract: the declaration everything derives from.
      key_field: the top-level field whose value is the Kafka key (UTF-8).
      new_maker: ``(rng, fake, users, start_ms) -> RecordMaker``, or None when the
        dataset has no generator.
      invalid: named faults for JSON values (``name → mutation``), or None for the
        ones the injector derives from the contract's constraints.
      avro_invalid: the same for Avro values (only breaks Avro's types can carry).
    """

    contract: Contract
    key_field: typing.Optional[str] = None
    new_maker: typing.Optional[typing.Callable[..., RecordMaker]] = None
    invalid: typing.Optional[typing.Mapping[str, Mutation]] = None
    avro_invalid: typing.Optional[typing.Mapping[str, Mutation]] = None

    def __post_init__(self):
        if self.key_field is not None:
            self.contract.field(self.key_field)

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

    @functools.cached_property
    def group_key(self) -> GroupKey:
        """A main-table row → its group in the aggregate (``CountPerWindow``'s key)."""
        return GroupKey(self.contract.aggregate.keys)

    @functools.cached_property
    def measures(self) -> typing.Optional[Measures]:
        """A main-table row → the values the aggregate averages, or None if it has none."""
        means = self.contract.aggregate.means
        return Measures(means) if means else None

    @functools.cached_property
    def partition_of(self) -> typing.Optional[PartitionOf]:
        """A main-table row → its Parquet partition folder, or None if unpartitioned."""
        contract = self.contract
        if contract.partition_by is None:
            return None
        return PartitionOf(contract.column(contract.event_time_field).name, contract.partition_by)

    def parquet_outputs(self) -> tuple[str, ...]:
        """The Parquet outputs, each a folder under the run's output prefix: the main
        table's, each child table's, the aggregate's, the dead letters'
        (``dead_letters``) and the raw records' where the contract keeps them."""
        raw = (self.contract.raw_output,) if self.contract.raw_output else ()
        children = tuple(t.name for t in self.tables.children)
        tables = (self.tables.main.name, *children, self.tables.aggregate.name)
        return (*tables, "dead_letters", *raw)
