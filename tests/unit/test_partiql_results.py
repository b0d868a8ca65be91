"""What a SELECT answers (projection labels, residual conditions) and its NextToken.

Projection: DynamoDB answers `SELECT m.k[1], l[0], m.z` with the attributes `k[1]`,
`l[0]` and `z`, refuses two paths that end in the same name ("Duplicate identifiers in
select clause"), and leaves out what an item lacks. NextToken: ExecuteStatement API
reference ("If NextToken is present, you need to paginate the result set and include
NextToken"); a token of another statement is "NextToken does not match request".
"""

from __future__ import annotations

import pytest

from atoll import partiql as p
from atoll.errors import ValidationError
from atoll.partiql import nodes as n
from atoll.partiql import paging, results

ITEM = {"pk": {"S": "a"}, "m": {"M": {"k": {"L": [{"N": "1"}, {"N": "2"}]}, "z": {"S": "z"}}},
        "l": {"L": [{"S": "first"}]}}


def projection(statement: str) -> tuple[n.Path, ...]:
    node = p.parse(statement)
    assert isinstance(node, n.Select) and node.projection is not None
    return node.projection


def test_paths_answer_under_their_last_name_and_indexes() -> None:
    paths = projection("SELECT m.k[1], l[0], m.z, pk, absent, m.k[5], l.x FROM t")
    assert results.labels_of(paths) == ["k[1]", "l[0]", "z", "pk", "absent", "k[5]", "x"]
    assert p.reshape(ITEM, paths) == {"k[1]": {"N": "2"}, "l[0]": {"S": "first"},
                                      "z": {"S": "z"}, "pk": {"S": "a"}}


def test_star_answers_the_item_itself() -> None:
    assert p.reshape(ITEM, None) is ITEM


def test_two_paths_with_one_last_name_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        results.labels_of(projection("SELECT m.z, z FROM t"))
    assert caught.value.message == "Duplicate identifiers in select clause: z"


def test_residual_conditions_use_the_expression_evaluator() -> None:
    names = {"#n0": "m", "#n1": "z"}
    assert p.keeps("begins_with(#n0.#n1, :v0)", names, {":v0": {"S": "z"}}, ITEM)
    assert not p.keeps("#n0.#n1 <> :v0", names, {":v0": {"S": "z"}}, ITEM)


def test_next_token_round_trip() -> None:
    digest = paging.digest("SELECT * FROM t", [{"S": "a"}])
    token = paging.encode(digest, 2, {"pk": {"S": "x"}})
    assert paging.decode(token, digest) == (2, {"pk": {"S": "x"}})
    assert paging.decode(paging.encode(digest, 3, None), digest) == (3, None)


def test_next_token_of_another_statement_or_parameters_is_refused() -> None:
    token = paging.encode(paging.digest("SELECT * FROM t", None), 0, {"pk": {"S": "x"}})
    for other in (paging.digest("SELECT * FROM u", None),
                  paging.digest("SELECT * FROM t", [{"S": "a"}])):
        with pytest.raises(ValidationError) as caught:
            paging.decode(token, other)
        assert caught.value.message == "NextToken does not match request"


@pytest.mark.parametrize("token", ["not base64!", "e30=", "bm90IGpzb24=",
                                   paging.encode("d", 0, None)[:-4]])
def test_a_token_that_does_not_decode_is_invalid(token: str) -> None:
    with pytest.raises(ValidationError) as caught:
        paging.decode(token, "d")
    assert caught.value.message == "Invalid NextToken"
