"""A batch re-run under the same run id replaces its Parquet files instead of adding to them.

Before the job, the files an earlier run left are set aside; after it, they are
dropped when the run ended DONE, else put back where no new file took their place.
Without this, a re-run that ends with another shard count would leave stale
``part-SSSSS-of-NNNNN`` files that the reconciliation counts.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import typing

__all__ = ["set_aside_earlier_parquet", "settle_earlier_parquet"]

_LOG = logging.getLogger(__name__)

_SET_ASIDE = ".replaced"


def set_aside_earlier_parquet(
    prefix: pathlib.Path, outputs: typing.Iterable[str]
) -> pathlib.Path | None:
    """Moves the Parquet files in the ``outputs`` folders of ``prefix`` (partition
    folders included) into ``prefix/.replaced/``, keeping their relative paths.
    Returns that folder, or ``None`` when there was nothing."""
    # rglob: a partitioned output keeps its files in partition folders.
    earlier = [f for name in outputs for f in sorted((prefix / name).rglob("*.parquet"))]
    if not earlier:
        return None
    aside = prefix / _SET_ASIDE
    for f in earlier:
        target = aside / f.relative_to(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, target)
    _LOG.info("set aside %d Parquet files of an earlier run under %s", len(earlier), aside)
    return aside


def settle_earlier_parquet(aside: pathlib.Path, replaced: bool) -> None:
    """After the run: drops the set-aside files when the run replaced them, else puts
    back those that no new file took the place of."""
    if not replaced:
        for f in sorted(aside.rglob("*.parquet")):
            target = aside.parent / f.relative_to(aside)
            if not target.exists():
                os.replace(f, target)
    shutil.rmtree(aside, ignore_errors=True)
