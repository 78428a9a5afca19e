"""The dataset registry: one module per dataset, one line here per module.

Each module declares ``DATASET`` (``schemas.dataset.Dataset``): its contract and its
generator's record maker, and binds its row types under their own names.  Adding a
dataset is adding its module and its line below (docs/datasets.md, Adding a dataset).
"""

from __future__ import annotations

import importlib

from schemas.dataset import Dataset

__all__ = ["DEFAULT", "UnknownDataset", "get", "names"]

# name → module; the name is the contract's.
_MODULES = {
    "customer_events": "datasets.customer_events",
    "customers": "datasets.customers",
    "events": "datasets.events",
}

DEFAULT = "customer_events"


class UnknownDataset(ValueError):
    """A dataset name that is not in the registry."""


def names() -> tuple[str, ...]:
    """The registered datasets' names, in registry order."""
    return tuple(_MODULES)


def get(name: str) -> Dataset:
    """The registered dataset ``name``; ``UnknownDataset`` names the known ones."""
    try:
        module = _MODULES[name]
    except KeyError:
        raise UnknownDataset(f"unknown dataset {name!r}: use one of {', '.join(names())}") from None
    dataset = importlib.import_module(module).DATASET
    if dataset.name != name:
        raise UnknownDataset(f"{module} declares {dataset.name!r}, registered as {name!r}")
    return dataset
