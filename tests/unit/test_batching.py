"""Batches per key: the keyed steps give the same outputs however a bundle is cut.

The stateful steps that take batches (dedup per bucket, counts per key) are run
directly on a state cell that lives across calls, as a runner's does, once with
one element per batch (what the per-element steps did) and once with the same
elements cut into random batches: every output, its tag and its timestamp must
be the same, in the same order.
"""

import typing

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.records import KafkaRecord
from tests.state_fakes import Bag, Cell
from transforms.aggregate import _CountPanesFn
from transforms.batching import Batch, BatchCoder, BatchPerKey
from transforms.dedup import _OneCopyPerBucketFn

pytestmark = pytest.mark.unit


class Row(typing.NamedTuple):
    event_id: str
    version: int


def _cut(items, cuts):
    """``items`` cut before every index in ``cuts``."""
    bounds = sorted({c for c in cuts if 0 < c < len(items)})
    return [items[a:b] for a, b in zip([0, *bounds], [*bounds, len(items)], strict=True)]


def _outputs(results):
    """Outputs as comparable tuples: tag, value, timestamp."""
    out = []
    for result in results:
        tag = getattr(result, "tag", None)
        value = result.value if tag is not None else result
        out.append((tag, value.value, value.timestamp))
    return out


_copies = st.lists(
    st.tuples(
        st.sampled_from("abcdef"),  # id
        st.integers(0, 3),  # version
        st.integers(0, 200),  # event time, s
        st.integers(0, 200),  # Kafka time, s
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(copies=_copies, cuts=st.lists(st.integers(0, 40)), latest=st.booleans())
def test_dedup_gives_the_same_verdicts_however_the_copies_are_batched(copies, cuts, latest):
    items = [
        (t * 1_000_000, (KafkaRecord("t", 0, n, k * 1000, b"k", b"v"), Row(i, v)))
        for n, (i, v, t, k) in enumerate(copies)
    ]

    def run(batches):
        fn = _OneCopyPerBucketFn(
            "event_id",
            60,
            "r",
            "version" if latest else None,
            arrival_ms=lambda record: record.timestamp_ms,
            grace_s=5,
        )
        state = Bag()
        return [
            o for batch in batches for o in _outputs(fn.process(("0", Batch(batch)), state, state))
        ]

    assert run(_cut(items, cuts)) == run([[item] for item in items])


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["view", "click"]), st.integers(0, 300), st.integers(0, 400)),
        max_size=40,
    ),
    cuts=st.lists(st.integers(0, 40)),
    fire_every=st.integers(1, 10),
)
def test_counts_give_the_same_panes_however_the_elements_are_batched(events, cuts, fire_every):
    # The on-time timer fires between batches in the per-element run at the same
    # element positions as in the batched run: every ``fire_every`` elements, at the
    # last element's time, wherever a batch ends there in both runs.
    items = [(t * 1_000_000, beam.Row(event_type=kind, arrival=a * 1000)) for kind, t, a in events]
    fires = set(range(fire_every, len(items) + 1, fire_every))
    batches = _cut(items, sorted(set(cuts) | fires))

    def run(batches):
        fn = _CountPanesFn(
            window.FixedWindows(60),
            10,
            lambda *pane: pane,  # (key, count, start, end, pane index, timing)
            weighted=False,
            arrival_ms=lambda row: row.arrival,
            grace_s=30,
        )
        state, out, seen = Cell(), [], 0
        for batch in batches:
            out += _outputs(fn.process(("view", Batch(batch)), state, state))
            seen += len(batch)
            if seen in fires and state.timer is not None:
                fired_at = state.timer
                out += [(None, o, fired_at) for o in fn.fire("view", fired_at, state, state)]
        return out

    assert run(batches) == run([[item] for item in items])


def test_a_batch_travels_as_one_pickle_with_its_timestamps():
    batch = Batch([(5, ("a", 1)), (3, ("b", 2))])
    coder = BatchCoder()
    decoded = coder.decode(coder.encode(batch))
    assert type(decoded) is Batch and decoded == batch and decoded.earliest() == Timestamp(micros=3)


def test_batches_are_per_key_and_window_and_capped(pipeline):
    elements = [
        TimestampedValue(("a", 1), 10),
        TimestampedValue(("b", 2), 11),
        TimestampedValue(("a", 3), 12),
        TimestampedValue(("a", 4), 70),  # another minute: another window
        TimestampedValue(("a", 5), 13),
    ]
    with pipeline as p:
        batches = (
            p
            | beam.Create(elements)
            | beam.WindowInto(window.FixedWindows(60))
            | BatchPerKey(max_items=2)
            | beam.Map(lambda kb: (kb[0], sorted(v for _, v in kb[1]), len(kb[1])))
        )
        # 'a' in [0, 60) holds 1, 3, 5: a batch of 2 and one of 1 (which is which
        # depends on the order within the bundle, so only sizes and the union are
        # checked); 'a' in [60, 120) holds 4; 'b' holds 2.
        sizes = batches | "Sizes" >> beam.Map(lambda kb: (kb[0], kb[2]))
        assert_that(sizes, equal_to([("a", 2), ("a", 1), ("a", 1), ("b", 1)]), label="Sizes")
        values = batches | "Values" >> beam.FlatMap(lambda kb: kb[1])
        assert_that(values, equal_to([1, 2, 3, 4, 5]), label="Values")
