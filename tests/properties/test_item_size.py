"""`item_size` (no validation, for items already checked: replicated ones) must give
exactly what `check_item` gives for every valid, normalised item, and no item's stored
JSON is shorter than its size."""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from atoll.model.values import check_item, item_size
from atoll.replication.change import item_json

names = st.text(min_size=1, max_size=8)
numbers = st.one_of(st.integers(-10**20, 10**20).map(str),
                    st.decimals(allow_nan=False, allow_infinity=False, places=4,
                                min_value=-10**9, max_value=10**9).map(str))
binaries = st.binary(min_size=1, max_size=20).map(lambda b: base64.b64encode(b).decode())
scalars = st.one_of(
    st.text(max_size=12).map(lambda s: {"S": s}), numbers.map(lambda n: {"N": n}),
    binaries.map(lambda b: {"B": b}), st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.sets(st.text(max_size=6), min_size=1, max_size=4).map(lambda s: {"SS": sorted(s)}),
    st.sets(st.integers(-999, 999), min_size=1, max_size=4).map(
        lambda s: {"NS": [str(n) for n in sorted(s)]}),
    st.sets(st.binary(min_size=1, max_size=6), min_size=1, max_size=3).map(
        lambda s: {"BS": [base64.b64encode(b).decode() for b in sorted(s)]}))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda items: {"L": items}),
    st.dictionaries(names, inner, max_size=4).map(lambda m: {"M": m})), max_leaves=12)
items = st.dictionaries(names, values, min_size=1, max_size=6)


@settings(max_examples=400, deadline=None)
@given(items)
def test_item_size_equals_the_validating_size(item: dict[str, Any]) -> None:
    normalised = copy.deepcopy(item)
    expected = check_item(normalised)  # validates and normalises numbers in place
    assert item_size(normalised) == expected


@settings(max_examples=400, deadline=None)
@given(items)
def test_an_items_stored_json_is_never_shorter_than_its_size(item: dict[str, Any]) -> None:
    # A page read without sizes (storage/pages.py) bounds its page by the items' lengths.
    normalised = copy.deepcopy(item)
    size = check_item(normalised)
    assert len(item_json(normalised)) >= size
    assert len(orjson.dumps(normalised)) >= size  # index rows' projected items
