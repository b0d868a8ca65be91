"""PartiQL through boto3 and the AWS CLI against a live server: ExecuteStatement,
BatchExecuteStatement and ExecuteTransaction.

Behaviour as AWS documents it (DynamoDB developer guide, cited per test):
  select  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ql-reference.select.html
  insert  .../ql-reference.insert.html     update  .../ql-reference.update.html
  delete  .../ql-reference.delete.html     data types  .../ql-reference.data-types.html
  functions  .../ql-functions.html         operators  .../ql-operators.html
  batches  .../ql-reference.multiplestatements.batching.html
  transactions  .../ql-reference.multiplestatements.transactions.html
and the API reference of ExecuteStatement, BatchExecuteStatement and ExecuteTransaction.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import ClusterProcesses, NodeDatabase, aws_cli, create_table, wait_until


def error_of(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response: dict[str, Any] = caught.value.response
    return response


def run(ddb: Any, statement: str, *parameters: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    if parameters:
        kwargs["Parameters"] = list(parameters)
    answer: dict[str, Any] = ddb.execute_statement(Statement=statement, **kwargs)
    answer.pop("ResponseMetadata", None)
    return answer


def refused(ddb: Any, statement: str, *parameters: dict[str, Any], **kwargs: Any
            ) -> tuple[str, str]:
    if parameters:
        kwargs["Parameters"] = list(parameters)
    error = error_of(ddb.execute_statement, Statement=statement, **kwargs)["Error"]
    return error["Code"], error["Message"]


def music(ddb: Any, name: str) -> str:
    return create_table(ddb, name, ("Artist", "S"), ("SongTitle", "S"))


def changelog_records(server: Any) -> int:
    with NodeDatabase(server) as database:
        return int(database.one("SELECT COUNT(*) FROM changelog")[0])


KEY = "Artist='Acme Band' AND SongTitle='PartiQL Rocks'"


# --- INSERT, UPDATE, DELETE, SELECT --------------------------------------------------------

def test_the_documented_music_statements(ddb: Any, table_name: str) -> None:
    """insert, update, delete and select docs: their Music examples, one after another."""
    t = music(ddb, table_name)
    assert run(ddb, f"INSERT INTO \"{t}\" value {{'Artist' : 'Acme Band','SongTitle' : "
                    "'PartiQL Rocks'}") == {"Items": []}
    assert run(ddb, f"UPDATE \"{t}\" SET AwardsWon=1 SET AwardDetail={{'Grammys':[2020, 2018]}}"
                    f" WHERE {KEY}") == {"Items": []}
    run(ddb, f"UPDATE \"{t}\" SET AwardDetail.Grammys =list_append(AwardDetail.Grammys,[2016])"
             f" WHERE {KEY}")
    run(ddb, f"UPDATE \"{t}\" REMOVE AwardDetail.Grammys[2] WHERE {KEY}")
    run(ddb, f"UPDATE \"{t}\" SET AwardDetail.BillBoard=[2020] WHERE {KEY}")
    run(ddb, f"UPDATE \"{t}\" SET BandMembers =<<'member1', 'member2'>> WHERE {KEY}")
    run(ddb, f"UPDATE \"{t}\" SET BandMembers =set_add(BandMembers, <<'newbandmember'>>) "
             f"WHERE {KEY}")
    item = run(ddb, f"SELECT * FROM \"{t}\" WHERE {KEY}")["Items"]
    assert item == [{"Artist": {"S": "Acme Band"}, "SongTitle": {"S": "PartiQL Rocks"},
                     "AwardsWon": {"N": "1"},
                     "AwardDetail": {"M": {"Grammys": {"L": [{"N": "2020"}, {"N": "2018"}]},
                                           "BillBoard": {"L": [{"N": "2020"}]}}},
                     "BandMembers": {"SS": ["member1", "member2", "newbandmember"]}}]
    # delete doc: RETURNING ALL OLD * answers the deleted item
    old = run(ddb, f"DELETE FROM \"{t}\" WHERE \"Artist\" = 'Acme Band' AND \"SongTitle\" = "
                   "'PartiQL Rocks' RETURNING ALL OLD *")
    assert old == {"Items": item}
    assert run(ddb, f"SELECT * FROM \"{t}\" WHERE {KEY}") == {"Items": []}


def test_the_documented_data_types(ddb: Any, table_name: str) -> None:
    """data types doc: insert every literal kind, then its two UPDATE examples."""
    t = create_table(ddb, table_name, ("primarykey", "S"))
    run(ddb, f"INSERT INTO {t} value {{'primarykey':'1', 'NumberType':1, 'MapType' : "
             "{'entryname1': 'value', 'entryname2': 4}, 'ListType': [1,'stringval'], "
             "'NumberSetType':<<1,34,32,4.5>>, 'StringSetType':<<'stringval','stringval2'>>}")
    run(ddb, f"UPDATE {t} SET NumberType=NumberType + 100 SET MapType.NewMapEntry=[2020, "
             "'stringvalue', 2.4] SET ListType = LIST_APPEND(ListType, [4, <<'string1', "
             "'string2'>>]) SET NumberSetType= SET_ADD(NumberSetType, <<345, 48.4>>) SET "
             "StringSetType = SET_ADD(StringSetType, <<'stringsetvalue1', 'stringsetvalue2'>>) "
             "WHERE primarykey='1'")
    run(ddb, f"UPDATE {t} SET NumberType=NumberType - 1 REMOVE ListType[1] REMOVE "
             "MapType.NewMapEntry SET NumberSetType = SET_DELETE( NumberSetType, <<345>>) SET "
             "StringSetType = SET_DELETE( StringSetType, <<'stringsetvalue1'>>) "
             "WHERE primarykey='1'")
    (item,) = run(ddb, f"SELECT * FROM {t} WHERE primarykey = '1'")["Items"]
    assert item["NumberType"] == {"N": "100"}
    assert item["MapType"] == {"M": {"entryname1": {"S": "value"}, "entryname2": {"N": "4"}}}
    assert item["ListType"] == {"L": [{"N": "1"}, {"N": "4"}, {"SS": ["string1", "string2"]}]}
    assert sorted(item["NumberSetType"]["NS"], key=float) == ["1", "4.5", "32", "34", "48.4"]
    assert sorted(item["StringSetType"]["SS"]) == ["stringsetvalue2", "stringval", "stringval2"]


def test_insert_never_overwrites(ddb: Any, table_name: str) -> None:
    """insert doc: an item with the same primary key -> DuplicateItemException."""
    t = music(ddb, table_name)
    run(ddb, f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'b', 'v': 1}}")
    error = error_of(ddb.execute_statement,
                     Statement=f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'b', "
                               "'v': 2}")["Error"]
    assert error == {"Code": "DuplicateItemException",
                     "Message": "Duplicate primary key exists in table"}
    assert run(ddb, f"SELECT v FROM {t} WHERE Artist = 'a' AND SongTitle = 'b'") == {
        "Items": [{"v": {"N": "1"}}]}


def test_update_changes_only_an_item_that_exists(ddb: Any, table_name: str) -> None:
    """update doc: "If the WHERE clause ... does not evaluate to true for any item ...
    ConditionalCheckFailedException"; other WHERE terms are conditions."""
    t = music(ddb, table_name)
    code, _ = refused(ddb, f"UPDATE {t} SET v = 1 WHERE Artist = 'a' AND SongTitle = 'b'")
    assert code == "ConditionalCheckFailedException"
    assert run(ddb, f"SELECT * FROM {t}") == {"Items": []}  # not created
    run(ddb, f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'b', 'v': 1}}")
    statement = f"UPDATE {t} SET v = 2 WHERE Artist = 'a' AND SongTitle = 'b' AND v = 5"
    error = error_of(ddb.execute_statement, Statement=statement,
                     ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert error["Error"]["Code"] == "ConditionalCheckFailedException"
    assert error["Item"] == {"Artist": {"S": "a"}, "SongTitle": {"S": "b"}, "v": {"N": "1"}}
    run(ddb, f"UPDATE {t} SET v = 2 WHERE Artist = 'a' AND SongTitle = 'b' AND v = 1")
    assert run(ddb, f"SELECT v FROM {t} WHERE Artist = 'a' AND SongTitle = 'b'") == {
        "Items": [{"v": {"N": "2"}}]}


@pytest.mark.parametrize("returning,expected", [
    ("ALL OLD *", [{"Artist": {"S": "a"}, "SongTitle": {"S": "b"}, "v": {"N": "1"},
                    "w": {"S": "x"}}]),
    ("MODIFIED OLD *", [{"v": {"N": "1"}}]),
    ("ALL NEW *", [{"Artist": {"S": "a"}, "SongTitle": {"S": "b"}, "v": {"N": "2"},
                    "w": {"S": "x"}}]),
    ("MODIFIED NEW *", [{"v": {"N": "2"}}]),
])
def test_update_returning(ddb: Any, table_name: str, returning: str, expected: Any) -> None:
    """update doc: RETURNING ALL OLD * | MODIFIED OLD * | ALL NEW * | MODIFIED NEW *."""
    t = music(ddb, table_name)
    run(ddb, f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'b', 'v': 1, 'w': 'x'}}")
    answer = run(ddb, f"UPDATE {t} SET v = 2 WHERE Artist = 'a' AND SongTitle = 'b' "
                      f"RETURNING {returning}")
    assert answer == {"Items": expected}


def test_delete(ddb: Any, table_name: str) -> None:
    """delete doc: a missing item is SUCCESS with 0 items deleted; a false condition on an
    existing item is ConditionalCheckFailedException."""
    t = music(ddb, table_name)
    assert run(ddb, f"DELETE FROM {t} WHERE Artist = 'a' AND SongTitle = 'b'") == {"Items": []}
    run(ddb, f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'b', 'v': 1}}")
    code, _ = refused(ddb, f"DELETE FROM {t} WHERE Artist = 'a' AND SongTitle = 'b' AND v = 2")
    assert code == "ConditionalCheckFailedException"
    run(ddb, f"DELETE FROM {t} WHERE Artist = 'a' AND SongTitle = 'b' AND v = 1")
    assert run(ddb, f"SELECT * FROM {t}") == {"Items": []}


def _fill_music(ddb: Any, t: str) -> None:
    rows = [("A", "Alpha", 1990, "rock"), ("A", "Beta", 2001, "pop"), ("A", "Gamma", 2010, None),
            ("B", "Alpha", 1985, "rock"), ("C", "Delta", 2020, "jazz")]
    for artist, song, year, genre in rows:
        item: dict[str, Any] = {"Artist": {"S": artist}, "SongTitle": {"S": song},
                                "Released": {"N": str(year)},
                                "Info": {"M": {"Tags": {"L": [{"S": f"t{year}"}]}}}}
        if genre is not None:
            item["Genre"] = {"S": genre}
        ddb.put_item(TableName=t, Item=item)


def _songs(answer: dict[str, Any]) -> list[str]:
    return [f"{i['Artist']['S']}/{i['SongTitle']['S']}" for i in answer["Items"]]


SELECT_CASES = [
    # select: equality on the full key (GetItem); on the partition key (Query); OR and IN
    # on the partition key (one read each); ORDER BY the sort key or the partition key
    ("WHERE Artist = 'A' AND SongTitle = 'Beta'", ["A/Beta"], True),
    ("WHERE Artist = 'A'", ["A/Alpha", "A/Beta", "A/Gamma"], True),
    ("WHERE Artist = 'A' ORDER BY SongTitle DESC", ["A/Gamma", "A/Beta", "A/Alpha"], True),
    ("WHERE Artist = 'C' OR Artist = 'B'", ["C/Delta", "B/Alpha"], True),
    ("WHERE Artist IN ['C', 'A', 'B'] ORDER BY Artist DESC, SongTitle",
     ["C/Delta", "B/Alpha", "A/Alpha", "A/Beta", "A/Gamma"], True),
    # sort key conditions, and a filter beside them
    ("WHERE Artist = 'A' AND SongTitle > 'Alpha'", ["A/Beta", "A/Gamma"], True),
    ("WHERE Artist = 'A' AND SongTitle BETWEEN 'B' AND 'H'", ["A/Beta", "A/Gamma"], True),
    ("WHERE Artist = 'A' AND begins_with(SongTitle, 'Ga')", ["A/Gamma"], True),
    ("WHERE Artist = 'A' AND SongTitle >= 'B' AND SongTitle < 'Gamma'", ["A/Beta"], True),
    ("WHERE Artist = 'A' AND SongTitle <> 'Beta'", ["A/Alpha", "A/Gamma"], True),
    ("WHERE Artist = 'A' AND Released > 2000", ["A/Beta", "A/Gamma"], True),
    ("WHERE Artist = 'A' AND SongTitle = 'Beta' AND Released > 2005", [], True),
    # full table scans (no partition key equality): sorted, as a scan's order is the hash's
    ("WHERE Released > 2000", ["A/Beta", "A/Gamma", "C/Delta"], False),
    ("WHERE Released BETWEEN 1980 AND 1995", ["A/Alpha", "B/Alpha"], False),
    ("WHERE Genre IN ['jazz', 'pop']", ["A/Beta", "C/Delta"], False),
    ("WHERE Artist = 'A' OR Genre = 'jazz'", ["A/Alpha", "A/Beta", "A/Gamma", "C/Delta"], False),
    ("WHERE Info.Tags[0] = 't1985'", ["B/Alpha"], False),
    # functions and IS
    ("WHERE Genre IS MISSING", ["A/Gamma"], False),
    ("WHERE Genre IS NOT MISSING AND begins_with(Genre, 'ro')", ["A/Alpha", "B/Alpha"], False),
    ("WHERE contains(SongTitle, 'lt')", ["C/Delta"], False),
    ("WHERE attribute_type(Info, 'M') AND size(SongTitle) = 4", ["A/Beta"], False),
    ("WHERE Info IS STRUCT AND Released IS NUMERIC AND NOT Genre IS STRING", ["A/Gamma"], False),
    ("WHERE attribute_exists(Genre) AND NOT attribute_not_exists(Info)",
     ["A/Alpha", "A/Beta", "B/Alpha", "C/Delta"], False),
]


@pytest.mark.parametrize("where,expected,ordered", SELECT_CASES)
def test_select(ddb: Any, table_name: str, where: str, expected: list[str],
                ordered: bool) -> None:
    """`ordered`: reads by key answer in key order (and the order of the partition key
    values); a scan's order is its own."""
    t = music(ddb, table_name)
    _fill_music(ddb, t)
    songs = _songs(run(ddb, f"SELECT * FROM \"{t}\" {where}"))
    assert (songs if ordered else sorted(songs)) == expected


def test_select_projection_answers_paths_by_their_last_name(ddb: Any, table_name: str) -> None:
    """select: "a projection list of one or more attribute names or document paths"."""
    t = music(ddb, table_name)
    _fill_music(ddb, t)
    answer = run(ddb, f"SELECT SongTitle, Info.Tags[0], Genre, absent FROM \"{t}\" "
                      "WHERE Artist = 'A' AND SongTitle IN ['Alpha', 'Gamma'] AND SongTitle <> 'x'")
    assert answer == {"Items": [
        {"SongTitle": {"S": "Alpha"}, "Tags[0]": {"S": "t1990"}, "Genre": {"S": "rock"}},
        {"SongTitle": {"S": "Gamma"}, "Tags[0]": {"S": "t2010"}}]}


def test_parameters(ddb: Any, table_name: str) -> None:
    """ExecuteStatement API reference: Parameters bind each `?` in order; too few is
    refused (too many, as in DynamoDB, are not)."""
    t = music(ddb, table_name)
    run(ddb, f"INSERT INTO {t} VALUE {{'Artist': ?, 'SongTitle': ?, 'n': ?, 'b': ?}}",
        {"S": "a"}, {"S": "b"}, {"N": "1.50"}, {"B": b"\x00\x01"})
    answer = run(ddb, f"SELECT n, b FROM {t} WHERE Artist = ? AND SongTitle = ?",
                 {"S": "a"}, {"S": "b"}, {"S": "ignored"})
    assert answer == {"Items": [{"n": {"N": "1.5"}, "b": {"B": b"\x00\x01"}}]}
    assert refused(ddb, f"SELECT * FROM {t} WHERE Artist = ? AND SongTitle = ?", {"S": "a"}) == (
        "ValidationException", "Number of parameters in request and statement don't match.")
    code, message = refused(ddb, f"SELECT * FROM {t} WHERE Artist = ?", {"N": "1"})
    assert (code, message) == ("ValidationException", "Key attribute's data type should match "
                               "its data type in table's schema: Key Artist")


@pytest.mark.parametrize("statement,message", [
    ("SLECT * FROM t", "Statement wasn't well formed, can't be processed: Expected data "
                       "manipulation"),
    ("SELECT * FROM {t} WHERE Artist = 'a' AND", "Statement wasn't well formed, can't be "
                                                 "processed: Unexpected end of statement"),
    ("UPDATE {t} SET v = 1 WHERE Artist = 'a'", "Where clause does not contain a mandatory "
                                                "equality on all key attributes"),
    ("DELETE FROM {t} WHERE Artist = 'a' AND SongTitle = 'b' RETURNING ALL NEW *",
     "Invalid returning clause: RETURNING ALL NEW *. Only RETURNING ALL OLD * is allowed in "
     "DELETE statements."),
    ("INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'b'}} RETURNING ALL OLD *",
     "RETURNING is not supported in INSERT"),
    ("SELECT * FROM {t} WHERE Artist = 'a' AND EXISTS(v)", "Unrecognized function: exists at "
                                                          "1:{col}:6"),
    ("EXISTS(SELECT * FROM {t} WHERE Artist = 'a' AND SongTitle = 'b' AND v = 1)",
     "EXISTS can only be used in ExecuteTransaction write requests."),
    ("SELECT * FROM \"{t}\".\"nope\" WHERE Artist = 'a'", "The table does not have the "
                                                       "specified index"),
    ("SELECT * FROM {t} LIMIT 1", "Unsupported clause: LIMIT"),
])
def test_statement_errors(ddb: Any, table_name: str, statement: str, message: str) -> None:
    t = music(ddb, table_name)
    text = statement.format(t=t)
    message = message.format(col=text.find("EXISTS(v)") + 1)
    assert refused(ddb, text) == ("ValidationException", message)


def test_a_missing_table(ddb: Any) -> None:
    code, message = refused(ddb, "SELECT * FROM \"no_such_table\" WHERE a = 1")
    assert code == "ResourceNotFoundException"
    assert "Requested resource not found" in message


# --- paging ----------------------------------------------------------------------------

def _pages(ddb: Any, statement: str, limit: int | None, max_pages: int = 200
           ) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Limit": limit} if limit else {}
    for page in range(1, max_pages + 1):
        answer = run(ddb, statement, **kwargs)
        items.extend(answer["Items"])
        if "NextToken" not in answer:
            return items, page
        kwargs["NextToken"] = answer["NextToken"]
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("where,count", [
    ("", 12),  # Scan
    ("WHERE Artist = 'p1'", 4),  # Query
    ("WHERE Artist IN ['p0', 'p2', 'missing']", 8),  # one Query per key
    ("WHERE Artist IN ['p0', 'p1'] AND SongTitle = 's2'", 2),  # one GetItem per key
    ("WHERE v >= 3", 5),  # a filtered Scan: pages may be empty
])
def test_limit_and_next_token_page_through_every_item_once(ddb: Any, table_name: str,
                                                           where: str, count: int) -> None:
    """ExecuteStatement API reference: Limit is "the maximum number of items to evaluate";
    "If NextToken is present, you need to paginate the result set and include NextToken"."""
    t = music(ddb, table_name)
    for p in range(3):
        for s in range(4):
            ddb.put_item(TableName=t, Item={"Artist": {"S": f"p{p}"}, "SongTitle": {"S": f"s{s}"},
                                            "v": {"N": str(s + 2 * (p % 2))}})
    statement = f"SELECT * FROM {t} {where}"
    everything, pages = _pages(ddb, statement, None)
    assert len(everything) == count and pages == 1
    for limit in (1, 3):
        paged, limited_pages = _pages(ddb, statement, limit)
        keys = [(i["Artist"]["S"], i["SongTitle"]["S"]) for i in paged]
        assert sorted(keys) == sorted((i["Artist"]["S"], i["SongTitle"]["S"])
                                      for i in everything)
        assert len(set(keys)) == count
        assert limited_pages >= count / limit


def test_a_page_stops_at_one_megabyte(ddb: Any, table_name: str) -> None:
    """ExecuteStatement API reference: "if the total number of processed items exceeds the
    maximum dataset size limit of 1 MB, the read stops"."""
    t = music(ddb, table_name)
    blob = "x" * 100_000
    for n in range(14):
        ddb.put_item(TableName=t, Item={"Artist": {"S": "big"}, "SongTitle": {"S": f"{n:02}"},
                                        "blob": {"S": blob}})
    first = run(ddb, f"SELECT SongTitle FROM {t} WHERE Artist = 'big'")
    assert 0 < len(first["Items"]) < 14 and "NextToken" in first
    assert first["LastEvaluatedKey"] == {"Artist": {"S": "big"},
                                         "SongTitle": first["Items"][-1]["SongTitle"]}
    everything, pages = _pages(ddb, f"SELECT SongTitle FROM {t} WHERE Artist = 'big'", None)
    assert [i["SongTitle"]["S"] for i in everything] == [f"{n:02}" for n in range(14)]
    assert pages == 2


def test_a_page_of_several_partitions_stops_near_one_megabyte(ddb: Any, table_name: str) -> None:
    """One read per partition key value, each up to 1 MB: the page starts no further read
    once it holds 1 MB."""
    t = music(ddb, table_name)
    blob = "x" * 100_000
    for p in range(5):
        for n in range(3):
            ddb.put_item(TableName=t, Item={"Artist": {"S": f"p{p}"}, "SongTitle": {"S": str(n)},
                                            "blob": {"S": blob}})
    statement = f"SELECT * FROM {t} WHERE Artist IN ['p0', 'p1', 'p2', 'p3', 'p4']"
    first = run(ddb, statement)
    assert len(first["Items"]) == 12 and "NextToken" in first
    assert "LastEvaluatedKey" not in first  # the next page starts the next partition afresh
    second = run(ddb, statement, NextToken=first["NextToken"])
    assert [i["Artist"]["S"] for i in second["Items"]] == ["p4"] * 3
    assert "NextToken" not in second


def test_a_next_token_belongs_to_its_statement(ddb: Any, table_name: str) -> None:
    t = music(ddb, table_name)
    for s in range(3):
        ddb.put_item(TableName=t, Item={"Artist": {"S": "a"}, "SongTitle": {"S": f"s{s}"}})
    token = run(ddb, f"SELECT * FROM {t}", Limit=1)["NextToken"]
    assert refused(ddb, f"SELECT * FROM {t} WHERE Artist = 'a'", NextToken=token) == (
        "ValidationException", "NextToken does not match request")
    assert refused(ddb, f"SELECT * FROM {t}", NextToken="garbage") == (
        "ValidationException", "Invalid NextToken")


# --- indexes -------------------------------------------------------------------------------

def _indexed(ddb: Any, name: str) -> str:
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                              for a in ("pk", "sk", "gpk", "lsk")],
        GlobalSecondaryIndexes=[{"IndexName": "by-gpk",
                                 "KeySchema": [{"AttributeName": "gpk", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
        LocalSecondaryIndexes=[{"IndexName": "by-lsk",
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "lsk", "KeyType": "RANGE"}],
                                "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    rows = [("p", "1", "x", "c", "a"), ("p", "2", "y", "b", "b"), ("p", "3", "x", "a", "c"),
            ("q", "1", None, None, "d")]
    for pk, sk, gpk, lsk, v in rows:
        item = {"pk": {"S": pk}, "sk": {"S": sk}, "v": {"S": v}}
        if gpk:
            item["gpk"] = {"S": gpk}
            item["lsk"] = {"S": lsk}
        ddb.put_item(TableName=name, Item=item)
    return name


def test_select_from_an_index(ddb: Any, table_name: str) -> None:
    """select: `SELECT * FROM "TableName"."IndexName"` reads the index: its items, its
    order, its projection."""
    t = _indexed(ddb, table_name)
    answer = run(ddb, f"SELECT sk, v FROM \"{t}\".\"by-gpk\" WHERE gpk = 'x'")
    assert sorted(i["sk"]["S"] for i in answer["Items"]) == ["1", "3"]
    answer = run(ddb, f"SELECT * FROM \"{t}\".\"by-lsk\" WHERE pk = 'p' ORDER BY lsk")
    assert answer["Items"] == [{"pk": {"S": "p"}, "sk": {"S": s}, "lsk": {"S": lsk}}
                               for s, lsk in (("3", "a"), ("2", "b"), ("1", "c"))]
    answer = run(ddb, f"SELECT sk FROM \"{t}\".\"by-lsk\" WHERE pk = 'p' AND lsk > 'a' "
                      "AND lsk <> 'c'")
    assert answer == {"Items": [{"sk": {"S": "2"}}]}
    # an index scan holds only the items the index holds
    assert len(run(ddb, f"SELECT * FROM \"{t}\".\"by-gpk\"")["Items"]) == 3
    assert refused(ddb, f"SELECT * FROM \"{t}\".\"by-gpk\" WHERE gpk = 'x'",
                   ConsistentRead=True) == (
        "ValidationException",
        "Strongly consistent read is not supported on Global Secondary Indexes")
    assert refused(ddb, f"UPDATE \"{t}\".\"by-gpk\" SET v = 'z' WHERE pk = 'p' AND sk = '1'") == (
        "ValidationException", "This operation is not supported on an index")


def test_consumed_capacity_and_consistent_read(ddb: Any, table_name: str) -> None:
    """ExecuteStatement API reference: ReturnConsumedCapacity; ConsistentRead doubles a
    read's units."""
    t = music(ddb, table_name)
    write = run(ddb, f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'b'}}",
                ReturnConsumedCapacity="TOTAL")
    assert write["ConsumedCapacity"] == {"TableName": t, "CapacityUnits": 1.0,
                                         "WriteCapacityUnits": 1.0}
    eventual = run(ddb, f"SELECT * FROM {t} WHERE Artist IN ['a', 'z']",
                   ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    consistent = run(ddb, f"SELECT * FROM {t} WHERE Artist IN ['a', 'z']",
                     ReturnConsumedCapacity="TOTAL", ConsistentRead=True)["ConsumedCapacity"]
    assert eventual == {"TableName": t, "CapacityUnits": 1.0, "ReadCapacityUnits": 1.0}
    assert consistent["CapacityUnits"] == 2 * eventual["CapacityUnits"]
    assert "ConsumedCapacity" not in run(ddb, f"SELECT * FROM {t}")


# --- BatchExecuteStatement -----------------------------------------------------------------

def batch(ddb: Any, *statements: Any, **kwargs: Any) -> dict[str, Any]:
    entries = [s if isinstance(s, dict) else {"Statement": s} for s in statements]
    answer: dict[str, Any] = ddb.batch_execute_statement(Statements=entries, **kwargs)
    answer.pop("ResponseMetadata", None)
    return answer


def test_batch_of_writes_answers_per_statement(ddb: Any, table_name: str) -> None:
    """batching doc + API reference: "A HTTP 200 response does not mean that all statements
    ... succeeded"; each failure is an Error {Code, Message} of its statement."""
    t = music(ddb, table_name)
    run(ddb, f"INSERT INTO {t} VALUE {{'Artist': 'old', 'SongTitle': 's', 'v': 1}}")
    answer = batch(
        ddb,
        {"Statement": f"INSERT INTO {t} VALUE {{'Artist': ?, 'SongTitle': ?}}",
         "Parameters": [{"S": "Acme Band"}, {"S": "Best Song"}]},
        f"INSERT INTO {t} VALUE {{'Artist': 'old', 'SongTitle': 's'}}",
        f"UPDATE {t} SET v = 2 WHERE Artist = 'old' AND SongTitle = 's' RETURNING ALL NEW *",
        f"UPDATE {t} SET v = 3 WHERE Artist = 'old' AND SongTitle = 's' AND v = 9",
        f"DELETE FROM {t} WHERE Artist = 'x'",
        "SLECT nothing",
        "DELETE FROM \"no_such_table\" WHERE Artist = 'a' AND SongTitle = 'b'",
        ReturnConsumedCapacity="TOTAL")
    assert answer["Responses"] == [
        {"TableName": t},
        {"TableName": t, "Error": {"Code": "DuplicateItem",
                                   "Message": "Duplicate primary key exists in table"}},
        {"TableName": t, "Item": {"Artist": {"S": "old"}, "SongTitle": {"S": "s"},
                                  "v": {"N": "2"}}},
        {"TableName": t, "Error": {"Code": "ConditionalCheckFailed",
                                   "Message": "The conditional request failed"}},
        {"Error": {"Code": "ValidationError", "Message": "Where clause does not contain a "
                   "mandatory equality on all key attributes"}},
        {"Error": {"Code": "ValidationError", "Message": "Statement wasn't well formed, can't "
                   "be processed: Expected data manipulation"}},
        {"Error": {"Code": "ResourceNotFound",
                   "Message": "Requested resource not found: Table: no_such_table not found"}},
    ]
    assert answer["ConsumedCapacity"] == [{"TableName": t, "CapacityUnits": 2.0,
                                           "WriteCapacityUnits": 2.0}]
    assert run(ddb, f"SELECT * FROM {t} WHERE Artist = 'Acme Band'")["Items"] == [
        {"Artist": {"S": "Acme Band"}, "SongTitle": {"S": "Best Song"}}]


def test_batch_of_reads(ddb: Any, table_name: str) -> None:
    """BatchExecuteStatement API reference: "Each read statement ... must specify an
    equality condition on all key attributes"."""
    t = music(ddb, table_name)
    _fill_music(ddb, t)
    answer = batch(
        ddb, f"SELECT SongTitle, Released FROM {t} WHERE Artist = 'A' AND SongTitle = 'Beta'",
        {"Statement": f"SELECT * FROM {t} WHERE Artist = ? AND SongTitle = ?",
         "Parameters": [{"S": "nobody"}, {"S": "x"}], "ConsistentRead": True},
        f"SELECT * FROM {t} WHERE Artist = 'A'",
        ReturnConsumedCapacity="TOTAL")
    assert answer["Responses"] == [
        {"TableName": t, "Item": {"SongTitle": {"S": "Beta"}, "Released": {"N": "2001"}}},
        {"TableName": t},
        {"Error": {"Code": "ValidationError", "Message": "Select statements within "
                   "BatchExecuteStatement must specify the primary key in the where clause."}},
    ]
    assert answer["ConsumedCapacity"] == [{"TableName": t, "CapacityUnits": 1.5,
                                           "ReadCapacityUnits": 1.5}]


def test_a_batch_is_all_reads_or_all_writes(ddb: Any, raw_ddb: Any, table_name: str) -> None:
    """batching doc: "The entire batch must consist of either read statements or write
    statements; you cannot mix both in one batch"; at most 25 statements."""
    t = music(ddb, table_name)
    error = error_of(ddb.batch_execute_statement, Statements=[
        {"Statement": f"SELECT * FROM {t} WHERE Artist = 'a' AND SongTitle = 'b'"},
        {"Statement": f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'b'}}"}])["Error"]
    assert error == {"Code": "ValidationException", "Message": "Read and write requests "
                     "together in the same batch is not supported."}
    assert run(ddb, f"SELECT * FROM {t}") == {"Items": []}
    error = error_of(raw_ddb.batch_execute_statement, Statements=[
        {"Statement": f"DELETE FROM {t} WHERE Artist = 'a' AND SongTitle = '{n}'"}
        for n in range(26)])["Error"]
    assert error["Code"] == "ValidationException" and "25" in error["Message"]


# --- ExecuteTransaction --------------------------------------------------------------------

def transact(ddb: Any, *statements: Any, **kwargs: Any) -> dict[str, Any]:
    entries = [s if isinstance(s, dict) else {"Statement": s} for s in statements]
    answer: dict[str, Any] = ddb.execute_transaction(TransactStatements=entries, **kwargs)
    answer.pop("ResponseMetadata", None)
    return answer


def test_a_transaction_of_writes_is_atomic_and_one_change(server: Any, ddb: Any,
                                                          table_name: str) -> None:
    """transactions doc: INSERT, UPDATE, DELETE and EXISTS (a ConditionCheck) commit
    together; as TransactWriteItems, the whole transaction is one changelog record."""
    t = music(ddb, table_name)
    other = create_table(ddb, table_name + "_other")
    run(ddb, f"INSERT INTO {t} VALUE {{'Artist': 'No One You Know', 'SongTitle': "
             "'Call Me Today'}")
    run(ddb, f"INSERT INTO {t} VALUE {{'Artist': 'Acme Band', 'SongTitle': 'PartiQL Rocks'}}")
    run(ddb, f"INSERT INTO {other} VALUE {{'pk': 'gone'}}")
    before = changelog_records(server)
    answer = transact(
        ddb,
        f"EXISTS(SELECT * FROM {t} where Artist='No One You Know' and SongTitle='Call Me Today' "
        "and Awards is  MISSING)",
        {"Statement": f"INSERT INTO {t} value {{'Artist':?,'SongTitle':?}}",
         "Parameters": [{"S": "Acme Band"}, {"S": "Best Song"}]},
        f"UPDATE {t} SET AwardsWon=1 SET AwardDetail={{'Grammys':[2020, 2018]}}  where "
        "Artist='Acme Band' and SongTitle='PartiQL Rocks'",
        f"DELETE FROM {other} WHERE pk = 'gone'",
        ReturnConsumedCapacity="TOTAL")
    assert changelog_records(server) == before + 1
    assert sorted(c["TableName"] for c in answer["ConsumedCapacity"]) == sorted([t, other])
    assert _songs(run(ddb, f"SELECT * FROM {t} WHERE Artist = 'Acme Band'")) == [
        "Acme Band/Best Song", "Acme Band/PartiQL Rocks"]
    assert run(ddb, f"SELECT AwardsWon FROM {t} WHERE {KEY}")["Items"] == [
        {"AwardsWon": {"N": "1"}}]
    assert run(ddb, f"SELECT * FROM {other}") == {"Items": []}


def test_a_failing_statement_cancels_the_transaction(ddb: Any, table_name: str) -> None:
    """transactions doc: "If any of the singleton INSERT, UPDATE, or DELETE operations
    return an error, the transactions are cancelled with the TransactionCanceledException
    exception, and the cancellation reason code includes the errors"."""
    t = music(ddb, table_name)
    run(ddb, f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'taken', 'v': 1}}")
    run(ddb, f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'other', 'v': 1}}")
    statements = [
        f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'new'}}",
        f"UPDATE {t} SET v = 2 WHERE Artist = 'a' AND SongTitle = 'other'",
        f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'taken'}}",
        f"UPDATE {t} SET v = 2 WHERE Artist = 'a' AND SongTitle = 'missing'",
        {"Statement": f"DELETE FROM {t} WHERE Artist = 'a' AND SongTitle = 'taken' AND v = 5",
         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
    ]
    error = error_of(ddb.execute_transaction,
                     TransactStatements=[s if isinstance(s, dict) else {"Statement": s}
                                         for s in statements[:4]])
    assert error["Error"]["Code"] == "TransactionCanceledException"
    assert error["Error"]["Message"] == (
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[None, None, DuplicateItem, ConditionalCheckFailed]")
    assert error["CancellationReasons"] == [
        {"Code": "None"}, {"Code": "None"},
        {"Code": "DuplicateItem", "Message": "Duplicate primary key exists in table"},
        {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}]
    error = error_of(ddb.execute_transaction, TransactStatements=[
        {"Statement": statements[0]}, statements[4]])
    assert error["CancellationReasons"][1]["Item"] == {
        "Artist": {"S": "a"}, "SongTitle": {"S": "taken"}, "v": {"N": "1"}}
    # nothing was written
    assert run(ddb, f"SELECT * FROM {t} WHERE Artist = 'a'")["Items"] == [
        {"Artist": {"S": "a"}, "SongTitle": {"S": s}, "v": {"N": "1"}}
        for s in ("other", "taken")]


def test_a_transaction_of_reads(ddb: Any, table_name: str) -> None:
    t = music(ddb, table_name)
    _fill_music(ddb, t)
    answer = transact(ddb, f"SELECT SongTitle, Info.Tags[0] FROM {t} WHERE Artist = 'A' AND "
                           "SongTitle = 'Beta'",
                      f"SELECT * FROM {t} WHERE Artist = 'nobody' AND SongTitle = 'x'",
                      ReturnConsumedCapacity="TOTAL")
    assert answer["Responses"] == [
        {"Item": {"SongTitle": {"S": "Beta"}, "Tags[0]": {"S": "t2001"}}}, {}]
    assert answer["ConsumedCapacity"][0]["TableName"] == t


@pytest.mark.parametrize("statements,message", [
    (["SELECT * FROM {t} WHERE Artist = 'a' AND SongTitle = 'b'",
      "UPDATE {t} SET v = 1 WHERE Artist = 'a' AND SongTitle = 'b'"],
     "ExecuteTransaction API does not support both read and write operations in the same "
     "request."),
    (["UPDATE {t} SET v = 1 WHERE Artist = 'a' AND SongTitle = 'b' RETURNING ALL NEW *"],
     "Validation failed in TransactStatements[0]: RETURNING clause is not supported in "
     "ExecuteTransaction."),
    (["INSERT INTO {t} VALUE {{'Artist': 'x', 'SongTitle': 'y'}}",
      "SELECT * FROM {t} WHERE Artist = 'a'"],
     "ExecuteTransaction API does not support both read and write operations in the same "
     "request."),
    (["SELECT * FROM {t} WHERE Artist = 'a'"],
     "Validation failed in TransactStatements[0]: Select statements within ExecuteTransaction "
     "must specify the primary key in the where clause."),
    (["INSERT INTO {t} VALUE {{'Artist': 'x', 'SongTitle': 'y'}}",
      "EXISTS(SELECT * FROM {t} WHERE Artist = 'a' AND SongTitle = 'b')"],
     "Validation failed in TransactStatements[1]: EXISTS() must contain a single item read "
     "with additional condition"),
    (["INSERT INTO {t} VALUE {{'Artist': 'x', 'SongTitle': 'y'}}",
      "UPDATE {t} SET v = 1 WHERE Artist = 'x' AND SongTitle = 'y'"],
     "Transaction request cannot include multiple operations on one item"),
])
def test_transaction_validation(ddb: Any, table_name: str, statements: list[str],
                                message: str) -> None:
    t = music(ddb, table_name)
    error = error_of(ddb.execute_transaction,
                     TransactStatements=[{"Statement": s.format(t=t)} for s in statements])
    assert error["Error"] == {"Code": "ValidationException", "Message": message}
    assert run(ddb, f"SELECT * FROM {t}") == {"Items": []}


def test_client_request_token_makes_a_transaction_run_once(ddb: Any, table_name: str) -> None:
    """ExecuteTransaction API reference: ClientRequestToken, idempotent as in
    TransactWriteItems; the same token with other statements is a mismatch."""
    t = music(ddb, table_name)
    run(ddb, f"INSERT INTO {t} VALUE {{'Artist': 'a', 'SongTitle': 'b', 'n': 0}}")
    update = f"UPDATE {t} SET n = n + 1 WHERE Artist = 'a' AND SongTitle = 'b'"
    transact(ddb, update, ClientRequestToken="token-1")
    transact(ddb, update, ClientRequestToken="token-1")
    assert run(ddb, f"SELECT n FROM {t} WHERE Artist = 'a' AND SongTitle = 'b'") == {
        "Items": [{"n": {"N": "1"}}]}
    error = error_of(ddb.execute_transaction, ClientRequestToken="token-1",
                     TransactStatements=[{"Statement": update.replace("+ 1", "+ 2")}])
    assert error["Error"]["Code"] == "IdempotentParameterMismatchException"


# --- the AWS CLI -----------------------------------------------------------------------

def test_aws_cli_execute_statement(server: Any, ddb: Any, table_name: str) -> None:
    """The developer guide's CLI usage: `aws dynamodb execute-statement --statement ...`,
    `batch-execute-statement` and `execute-transaction` with `file://` statements."""
    t = music(ddb, table_name)
    aws_cli(server.url, "execute-statement", "--statement",
            f"INSERT INTO \"{t}\" VALUE {{'Artist': ?, 'SongTitle': ?, 'Year': 2020}}",
            "--parameters", '[{"S": "Acme Band"}, {"S": "PartiQL Rocks"}]')
    got = aws_cli(server.url, "execute-statement", "--statement",
                  f"SELECT * FROM \"{t}\" WHERE Artist = 'Acme Band'")
    assert got["Items"] == [{"Artist": {"S": "Acme Band"}, "SongTitle": {"S": "PartiQL Rocks"},
                             "Year": {"N": "2020"}}]
    statements = server.data_dir / f"{t}-partiql.json"
    statements.write_text(json.dumps([
        {"Statement": f"UPDATE \"{t}\" SET AwardsWon=1 WHERE {KEY}"},
        {"Statement": f"INSERT INTO \"{t}\" VALUE {{'Artist': 'Acme Band', 'SongTitle': 'B'}}"}]))
    aws_cli(server.url, "execute-transaction", "--transact-statements", f"file://{statements}")
    batch_answer = aws_cli(server.url, "batch-execute-statement", "--statements",
                           f"file://{statements}")
    codes = [r.get("Error", {}).get("Code") for r in batch_answer["Responses"]]
    assert codes == [None, "DuplicateItem"]
    got = aws_cli(server.url, "execute-statement", "--statement",
                  f"SELECT SongTitle, AwardsWon FROM \"{t}\" WHERE Artist = 'Acme Band'")
    assert got["Items"] == [{"SongTitle": {"S": "B"}},
                            {"SongTitle": {"S": "PartiQL Rocks"}, "AwardsWon": {"N": "1"}}]


# --- three regions ---------------------------------------------------------------------

TRANSACTIONS = 25


@pytest.mark.slow
def test_an_execute_transaction_replicates_atomically(tmp_path: Path) -> None:
    """Issue 31 acceptance: one ExecuteTransaction is one change, applied whole in every
    region. A writer in one region moves two items to the same version in each
    transaction; readers in the other two regions (reading both in one snapshot) never
    see them differ, and every region ends at the last version."""
    cluster = ClusterProcesses(tmp_path, ("us-east", "eu-west", "ap-south")).start()
    try:
        clients = cluster.clients()
        create_table(clients["us-east"], "pq_atomic")
        assert wait_until(lambda: all("pq_atomic" in c.list_tables()["TableNames"]
                                      for c in clients.values()), 10)
        writer = clients["us-east"]
        transact(writer, "INSERT INTO pq_atomic VALUE {'pk': 'a', 'v': 0}",
                 "INSERT INTO pq_atomic VALUE {'pk': 'b', 'v': 0}")
        torn: list[tuple[str, Any]] = []
        failures: list[str] = []
        seen: set[str] = set()  # versions the readers saw (several: they ran during it)
        done = threading.Event()

        def reader(region: str) -> None:
            ddb = clients[region]
            for _ in range(2000):
                if done.is_set():
                    return
                try:
                    answer = transact(ddb, "SELECT v FROM pq_atomic WHERE pk = 'a'",
                                      "SELECT v FROM pq_atomic WHERE pk = 'b'")
                except Exception as error:
                    failures.append(f"{region}: {error}")
                    return
                versions = [r.get("Item", {}).get("v") for r in answer["Responses"]]
                if versions[0] != versions[1]:
                    torn.append((region, versions))
                seen.add(str(versions[0]))

        readers = [threading.Thread(target=reader, args=(r,)) for r in ("eu-west", "ap-south")]
        for thread in readers:
            thread.start()
        for n in range(1, TRANSACTIONS + 1):
            transact(writer, f"UPDATE pq_atomic SET v = {n} WHERE pk = 'a'",
                     f"UPDATE pq_atomic SET v = {n} WHERE pk = 'b'")

        def converged() -> bool:
            return all(transact(c, "SELECT v FROM pq_atomic WHERE pk = 'a'",
                                "SELECT v FROM pq_atomic WHERE pk = 'b'")["Responses"]
                       == [{"Item": {"v": {"N": str(TRANSACTIONS)}}}] * 2
                       for c in clients.values())

        assert wait_until(converged, 30, 0.2)
        done.set()
        for thread in readers:
            thread.join(timeout=60)
        assert failures == []
        assert torn == []
        assert len(seen) > 2, seen
    finally:
        cluster.stop()
