"""PartiQL statements -> the DynamoDB requests they translate into (pure, no server).

The statements are the examples of AWS's DynamoDB developer guide, cited per case:
  select: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ql-reference.select.html
  insert: .../ql-reference.insert.html   update: .../ql-reference.update.html
  delete: .../ql-reference.delete.html   data types: .../ql-reference.data-types.html
  functions: .../ql-functions.html (size, exists, attribute_type, begins_with, contains,
  missing)   transactions: .../ql-reference.multiplestatements.transactions.html
Error messages are DynamoDB's own (ValidationException texts as the service answers them).
"""

from __future__ import annotations

from typing import Any

import pytest

from atoll import partiql as p
from atoll.errors import ValidationError

SCHEMAS = {
    "Orders": p.TableSchema("Orders", "OrderID", None, {"OrderID": "N"}),
    "Music": p.TableSchema(
        "Music", "Artist", "SongTitle",
        {"Artist": "S", "SongTitle": "S", "AlbumTitle": "S", "Year": "N"},
        {"AlbumIndex": p.IndexSchema("AlbumIndex", "GSI", "AlbumTitle", "Year", "ALL"),
         "YearIndex": p.IndexSchema("YearIndex", "LSI", "Artist", "Year", "KEYS_ONLY")}),
    "WatchList": p.TableSchema("WatchList", "CustomerID", "MovieID",
                               {"CustomerID": "S", "MovieID": "S"}),
    "TypesTable": p.TableSchema("TypesTable", "primarykey", None, {"primarykey": "S"}),
}


def translate(statement: str, parameters: list[Any] | None = None,
              mode: str = p.STATEMENT) -> Any:
    node = p.parse(statement, parameters)
    schema = SCHEMAS[p.table_of(node)]
    if isinstance(node, p.Select):
        plan = p.translate_select(node, schema, statement, mode)
        residual = plan.residual
        return ([list(read) for read in plan.reads],
                (residual.condition, residual.names, residual.values) if residual else None)
    write = p.translate_write(node, schema, statement)
    return write.operation, write.request


ORDERS_PROJECTION = {"ProjectionExpression": "#n0, #n1",
                     "ExpressionAttributeNames": {"#n0": "OrderID", "#n1": "Total"}}


def get_order(n: str) -> list[Any]:
    return ["GetItem", {"TableName": "Orders", "Key": {"OrderID": {"N": n}},
                        **ORDERS_PROJECTION}]


def scan_orders(condition: str, values: dict[str, Any]) -> list[Any]:
    return ["Scan", {"TableName": "Orders", "FilterExpression": condition,
                     "ProjectionExpression": "#n1, #n0",
                     "ExpressionAttributeNames": {"#n0": "Total", "#n1": "OrderID"},
                     "ExpressionAttributeValues": values}]


SELECT_CASES = [
    # select: "returns one item ... by specifying the partition key, OrderID, and using the
    # equality operator" -> a GetItem
    ('SELECT OrderID, Total FROM "Orders" WHERE OrderID = 1', [get_order("1")], None),
    # select: "specific partition key ... values using the OR operator" -> one read each
    ('SELECT OrderID, Total FROM "Orders" WHERE OrderID = 1 OR OrderID = 2',
     [get_order("1"), get_order("2")], None),
    # select: "using the IN operator ... in descending order, based on the OrderID"
    ('SELECT OrderID, Total FROM "Orders" WHERE OrderID IN [1, 2, 3] ORDER BY OrderID DESC',
     [get_order("3"), get_order("2"), get_order("1")], None),
    # numbers order by value, not text
    ('SELECT OrderID, Total FROM "Orders" WHERE OrderID IN [10, 9, 100] ORDER BY OrderID',
     [get_order("9"), get_order("10"), get_order("100")], None),
    # select: "a full table scan ... that have a Total greater than 500"
    ('SELECT OrderID, Total FROM "Orders" WHERE Total > 500',
     [scan_orders("#n0 > :v0", {":v0": {"N": "500"}})], None),
    # select: full table scan with IN on a non-key attribute
    ('SELECT OrderID, Total FROM "Orders" WHERE Total IN [500, 600]',
     [scan_orders("#n0 IN (:v0, :v1)", {":v0": {"N": "500"}, ":v1": {"N": "600"}})], None),
    # select: full table scan with BETWEEN on a non-key attribute
    ('SELECT OrderID, Total FROM "Orders" WHERE Total BETWEEN 500 AND 600',
     [scan_orders("#n0 BETWEEN :v0 AND :v1", {":v0": {"N": "500"}, ":v1": {"N": "600"}})], None),
    # select: "OrderID = 100 OR Address='some address'" results in a full table scan
    ("SELECT * FROM \"Orders\" WHERE OrderID = 100 OR Address='some address'",
     [["Scan", {"TableName": "Orders", "FilterExpression": "(#n0 = :v0) OR (#n1 = :v1)",
                "ExpressionAttributeNames": {"#n0": "OrderID", "#n1": "Address"},
                "ExpressionAttributeValues": {":v0": {"N": "100"},
                                              ":v1": {"S": "some address"}}}]], None),
    # select: "OrderID > 1" results in a full table scan
    ('SELECT * FROM "Orders" WHERE OrderID > 1',
     [["Scan", {"TableName": "Orders", "FilterExpression": "#n0 > :v0",
                "ExpressionAttributeNames": {"#n0": "OrderID"},
                "ExpressionAttributeValues": {":v0": {"N": "1"}}}]], None),
    # select: document path in the SELECT clause, full key in the WHERE clause
    ("SELECT Devices.FireStick.DateWatched[0] FROM WatchList "
     "WHERE CustomerID= 'C1' AND MovieID= 'M1'",
     [["GetItem", {"TableName": "WatchList",
                   "Key": {"CustomerID": {"S": "C1"}, "MovieID": {"S": "M1"}},
                   "ProjectionExpression": "#n0",
                   "ExpressionAttributeNames": {"#n0": "Devices"}}]], None),
    # select: document path in the WHERE clause -> full table scan
    ("SELECT Devices FROM WatchList WHERE Devices.FireStick.DateWatched[0] >= '12/12/19'",
     [["Scan", {"TableName": "WatchList", "FilterExpression": "#n0.#n1.#n2[0] >= :v0",
                "ProjectionExpression": "#n0",
                "ExpressionAttributeNames": {"#n0": "Devices", "#n1": "FireStick",
                                             "#n2": "DateWatched"},
                "ExpressionAttributeValues": {":v0": {"S": "12/12/19"}}}]], None),
    # functions, attribute_type: SELECT * FROM "Music" WHERE attribute_type("Artist", 'S')
    ("SELECT * FROM \"Music\" WHERE attribute_type(\"Artist\", 'S')",
     [["Scan", {"TableName": "Music", "FilterExpression": "attribute_type(#n0, :v0)",
                "ExpressionAttributeNames": {"#n0": "Artist"},
                "ExpressionAttributeValues": {":v0": {"S": "S"}}}]], None),
    # functions, begins_with: a GetItem has no filter, so the condition is the residual
    ("SELECT * FROM \"Orders\" WHERE \"OrderID\"=1 AND begins_with(\"Address\", '7834 24th')",
     [["GetItem", {"TableName": "Orders", "Key": {"OrderID": {"N": "1"}}}]],
     ("begins_with(#n0, :v0)", {"#n0": "Address"}, {":v0": {"S": "7834 24th"}})),
    # functions, contains
    ("SELECT * FROM Orders WHERE OrderID=1 AND contains(\"Address\", 'Kirkland')",
     [["GetItem", {"TableName": "Orders", "Key": {"OrderID": {"N": "1"}}}]],
     ("contains(#n0, :v0)", {"#n0": "Address"}, {":v0": {"S": "Kirkland"}})),
    # functions, size
    ('SELECT * FROM "Orders" WHERE "OrderID"=1 AND size("Image") >300',
     [["GetItem", {"TableName": "Orders", "Key": {"OrderID": {"N": "1"}}}]],
     ("size(#n0) > :v0", {"#n0": "Image"}, {":v0": {"N": "300"}})),
    # functions, missing: SELECT * FROM Music WHERE "Awards" IS MISSING
    ('SELECT * FROM Music WHERE "Awards" IS MISSING',
     [["Scan", {"TableName": "Music", "FilterExpression": "attribute_not_exists(#n0)",
                "ExpressionAttributeNames": {"#n0": "Awards"}}]], None),
    # select: "table"."index"; a >= and a <= on the sort key become one BETWEEN
    ("SELECT * FROM \"Music\".\"AlbumIndex\" WHERE AlbumTitle = 'Songs' "
     "AND \"Year\" >= 1990 AND \"Year\" <= 2000",
     [["Query", {"TableName": "Music", "IndexName": "AlbumIndex",
                 "KeyConditionExpression": "#n0 = :v0 AND #n1 BETWEEN :v1 AND :v2",
                 "ExpressionAttributeNames": {"#n0": "AlbumTitle", "#n1": "Year"},
                 "ExpressionAttributeValues": {":v0": {"S": "Songs"}, ":v1": {"N": "1990"},
                                               ":v2": {"N": "2000"}}}]], None),
    # select: ORDER BY the sort key DESC; a second sort key bound is evaluated on the items
    ("SELECT * FROM \"Music\" WHERE Artist = 'Acme' AND SongTitle > 'M' AND SongTitle < 'Z' "
     "ORDER BY SongTitle DESC",
     [["Query", {"TableName": "Music", "KeyConditionExpression": "#n0 = :v0 AND #n1 > :v1",
                 "ScanIndexForward": False,
                 "ExpressionAttributeNames": {"#n0": "Artist", "#n1": "SongTitle"},
                 "ExpressionAttributeValues": {":v0": {"S": "Acme"}, ":v1": {"S": "M"}}}]],
     ("#n0 < :v0", {"#n0": "SongTitle"}, {":v0": {"S": "Z"}})),
    # begins_with on the sort key is a key condition; IS NOT MISSING a filter
    ("SELECT * FROM \"Music\" WHERE Artist = 'Acme' AND begins_with(SongTitle, 'Part') "
     "AND Awards IS NOT MISSING",
     [["Query", {"TableName": "Music",
                 "KeyConditionExpression": "#n0 = :v0 AND begins_with(#n1, :v1)",
                 "FilterExpression": "attribute_exists(#n2)",
                 "ExpressionAttributeNames": {"#n0": "Artist", "#n1": "SongTitle",
                                              "#n2": "Awards"},
                 "ExpressionAttributeValues": {":v0": {"S": "Acme"},
                                               ":v1": {"S": "Part"}}}]], None),
    # an index's sort key cannot be in its Query filter: it is the residual
    ("SELECT * FROM \"Music\".\"YearIndex\" WHERE Artist = 'Acme' AND \"Year\" <> 2000",
     [["Query", {"TableName": "Music", "IndexName": "YearIndex",
                 "KeyConditionExpression": "#n0 = :v0",
                 "ExpressionAttributeNames": {"#n0": "Artist"},
                 "ExpressionAttributeValues": {":v0": {"S": "Acme"}}}]],
     ("#n0 <> :v0", {"#n0": "Year"}, {":v0": {"N": "2000"}})),
    # operators: IS <type> (NULL, STRING, LIST ...) test the attribute's type
    ("SELECT * FROM Music WHERE x IS STRING AND y IS NOT NULL AND NOT z IS LIST",
     [["Scan", {"TableName": "Music",
                "FilterExpression": "(attribute_type(#n0, :v0)) AND (NOT attribute_type(#n1, "
                                    ":v1)) AND (NOT (attribute_type(#n2, :v2)))",
                "ExpressionAttributeNames": {"#n0": "x", "#n1": "y", "#n2": "z"},
                "ExpressionAttributeValues": {":v0": {"S": "S"}, ":v1": {"S": "NULL"},
                                              ":v2": {"S": "L"}}}]], None),
]


@pytest.mark.parametrize("statement,reads,residual", SELECT_CASES)
def test_select_translates_into_reads(statement: str, reads: list[Any], residual: Any) -> None:
    assert translate(statement) == (reads, residual)


MUSIC_KEY = {"Artist": {"S": "Acme Band"}, "SongTitle": {"S": "PartiQL Rocks"}}
WHERE_KEY = "WHERE Artist='Acme Band' AND SongTitle='PartiQL Rocks'"

WRITE_CASES = [
    # insert: INSERT never overwrites (DuplicateItemException): PutItem on a free key only
    ("INSERT INTO \"Music\" value {'Artist' : 'Acme Band','SongTitle' : 'PartiQL Rocks'}",
     "PutItem", {"TableName": "Music", "Item": MUSIC_KEY,
                 "ConditionExpression": "attribute_not_exists(#n0)",
                 "ExpressionAttributeNames": {"#n0": "Artist"}}),
    # data types: every literal kind
    ("INSERT INTO TypesTable value {'primarykey':'1', 'NumberType':1, 'MapType' : "
     "{'entryname1': 'value', 'entryname2': 4}, 'ListType': [1,'stringval'], "
     "'NumberSetType':<<1,34,32,4.5>>, 'StringSetType':<<'stringval','stringval2'>>}",
     "PutItem", {"TableName": "TypesTable",
                 "Item": {"primarykey": {"S": "1"}, "NumberType": {"N": "1"},
                          "MapType": {"M": {"entryname1": {"S": "value"},
                                            "entryname2": {"N": "4"}}},
                          "ListType": {"L": [{"N": "1"}, {"S": "stringval"}]},
                          "NumberSetType": {"NS": ["1", "34", "32", "4.5"]},
                          "StringSetType": {"SS": ["stringval", "stringval2"]}},
                 "ConditionExpression": "attribute_not_exists(#n0)",
                 "ExpressionAttributeNames": {"#n0": "primarykey"}}),
    # update: SET twice; an UPDATE of a missing item fails instead of creating it
    (f"UPDATE \"Music\" SET AwardsWon=1 SET AwardDetail={{'Grammys':[2020, 2018]}} {WHERE_KEY}",
     "UpdateItem", {"TableName": "Music", "Key": MUSIC_KEY,
                    "UpdateExpression": "SET #n0 = :v0, #n1 = :v1",
                    "ConditionExpression": "attribute_exists(#n2)",
                    "ExpressionAttributeNames": {"#n0": "AwardsWon", "#n1": "AwardDetail",
                                                 "#n2": "Artist"},
                    "ExpressionAttributeValues": {
                        ":v0": {"N": "1"},
                        ":v1": {"M": {"Grammys": {"L": [{"N": "2020"}, {"N": "2018"}]}}}}}),
    # update: RETURNING ALL OLD *
    (f"UPDATE \"Music\" SET AwardsWon=1 {WHERE_KEY} RETURNING ALL OLD *",
     "UpdateItem", {"TableName": "Music", "Key": MUSIC_KEY, "UpdateExpression": "SET #n0 = :v0",
                    "ConditionExpression": "attribute_exists(#n1)", "ReturnValues": "ALL_OLD",
                    "ExpressionAttributeNames": {"#n0": "AwardsWon", "#n1": "Artist"},
                    "ExpressionAttributeValues": {":v0": {"N": "1"}}}),
    # update: RETURNING MODIFIED NEW *
    (f"UPDATE \"Music\" SET AwardsWon=1 {WHERE_KEY} RETURNING MODIFIED NEW *",
     "UpdateItem", {"TableName": "Music", "Key": MUSIC_KEY, "UpdateExpression": "SET #n0 = :v0",
                    "ConditionExpression": "attribute_exists(#n1)",
                    "ReturnValues": "UPDATED_NEW",
                    "ExpressionAttributeNames": {"#n0": "AwardsWon", "#n1": "Artist"},
                    "ExpressionAttributeValues": {":v0": {"N": "1"}}}),
    # update: list_append
    (f"UPDATE \"Music\" SET AwardDetail.Grammys =list_append(AwardDetail.Grammys,[2016]) "
     f"{WHERE_KEY}",
     "UpdateItem", {"TableName": "Music", "Key": MUSIC_KEY,
                    "UpdateExpression": "SET #n0.#n1 = list_append(#n0.#n1, :v0)",
                    "ConditionExpression": "attribute_exists(#n2)",
                    "ExpressionAttributeNames": {"#n0": "AwardDetail", "#n1": "Grammys",
                                                 "#n2": "Artist"},
                    "ExpressionAttributeValues": {":v0": {"L": [{"N": "2016"}]}}}),
    # update: REMOVE a list element
    (f"UPDATE \"Music\" REMOVE AwardDetail.Grammys[2] {WHERE_KEY}",
     "UpdateItem", {"TableName": "Music", "Key": MUSIC_KEY,
                    "UpdateExpression": "REMOVE #n0.#n1[2]",
                    "ConditionExpression": "attribute_exists(#n2)",
                    "ExpressionAttributeNames": {"#n0": "AwardDetail", "#n1": "Grammys",
                                                 "#n2": "Artist"}}),
    # update: a string set literal, then set_add of one member
    (f"UPDATE \"Music\" SET BandMembers =<<'member1', 'member2'>> {WHERE_KEY}",
     "UpdateItem", {"TableName": "Music", "Key": MUSIC_KEY, "UpdateExpression": "SET #n0 = :v0",
                    "ConditionExpression": "attribute_exists(#n1)",
                    "ExpressionAttributeNames": {"#n0": "BandMembers", "#n1": "Artist"},
                    "ExpressionAttributeValues": {":v0": {"SS": ["member1", "member2"]}}}),
    (f"UPDATE \"Music\" SET BandMembers =set_add(BandMembers, <<'newbandmember'>>) {WHERE_KEY}",
     "UpdateItem", {"TableName": "Music", "Key": MUSIC_KEY, "UpdateExpression": "ADD #n0 :v0",
                    "ConditionExpression": "attribute_exists(#n1)",
                    "ExpressionAttributeNames": {"#n0": "BandMembers", "#n1": "Artist"},
                    "ExpressionAttributeValues": {":v0": {"SS": ["newbandmember"]}}}),
    # data types: arithmetic, nested map entry, LIST_APPEND, SET_ADD (upper case)
    ("UPDATE TypesTable SET NumberType=NumberType + 100 SET MapType.NewMapEntry=[2020, "
     "'stringvalue', 2.4] SET ListType = LIST_APPEND(ListType, [4, <<'string1', 'string2'>>]) "
     "SET NumberSetType= SET_ADD(NumberSetType, <<345, 48.4>>) SET StringSetType = "
     "SET_ADD(StringSetType, <<'stringsetvalue1', 'stringsetvalue2'>>) WHERE primarykey='1'",
     "UpdateItem", {
         "TableName": "TypesTable", "Key": {"primarykey": {"S": "1"}},
         "UpdateExpression": "SET #n0 = #n0 + :v0, #n1.#n2 = :v1, #n3 = list_append(#n3, :v2) "
                             "ADD #n4 :v3, #n5 :v4",
         "ConditionExpression": "attribute_exists(#n6)",
         "ExpressionAttributeNames": {"#n0": "NumberType", "#n1": "MapType", "#n2": "NewMapEntry",
                                      "#n3": "ListType", "#n4": "NumberSetType",
                                      "#n5": "StringSetType", "#n6": "primarykey"},
         "ExpressionAttributeValues": {
             ":v0": {"N": "100"},
             ":v1": {"L": [{"N": "2020"}, {"S": "stringvalue"}, {"N": "2.4"}]},
             ":v2": {"L": [{"N": "4"}, {"SS": ["string1", "string2"]}]},
             ":v3": {"NS": ["345", "48.4"]},
             ":v4": {"SS": ["stringsetvalue1", "stringsetvalue2"]}}}),
    # data types: subtraction, REMOVE, SET_DELETE
    ("UPDATE TypesTable SET NumberType=NumberType - 1 REMOVE ListType[1] REMOVE "
     "MapType.NewMapEntry SET NumberSetType = SET_DELETE( NumberSetType, <<345>>) SET "
     "StringSetType = SET_DELETE( StringSetType, <<'stringsetvalue1'>>) WHERE primarykey='1'",
     "UpdateItem", {
         "TableName": "TypesTable", "Key": {"primarykey": {"S": "1"}},
         "UpdateExpression": "SET #n0 = #n0 - :v0 REMOVE #n1[1], #n2.#n3 DELETE #n4 :v1, #n5 :v2",
         "ConditionExpression": "attribute_exists(#n6)",
         "ExpressionAttributeNames": {"#n0": "NumberType", "#n1": "ListType", "#n2": "MapType",
                                      "#n3": "NewMapEntry", "#n4": "NumberSetType",
                                      "#n5": "StringSetType", "#n6": "primarykey"},
         "ExpressionAttributeValues": {":v0": {"N": "1"}, ":v1": {"NS": ["345"]},
                                       ":v2": {"SS": ["stringsetvalue1"]}}}),
    # update: other WHERE terms become the condition
    (f"UPDATE \"Music\" SET AwardsWon=2 {WHERE_KEY} AND AwardsWon = 1",
     "UpdateItem", {"TableName": "Music", "Key": MUSIC_KEY, "UpdateExpression": "SET #n0 = :v0",
                    "ConditionExpression": "attribute_exists(#n1) AND (#n0 = :v1)",
                    "ExpressionAttributeNames": {"#n0": "AwardsWon", "#n1": "Artist"},
                    "ExpressionAttributeValues": {":v0": {"N": "2"}, ":v1": {"N": "1"}}}),
    # delete: by the full key; a missing item is a success
    ("DELETE FROM \"Music\" WHERE \"Artist\" = 'Acme Band' AND \"SongTitle\" = 'PartiQL Rocks'",
     "DeleteItem", {"TableName": "Music", "Key": MUSIC_KEY}),
    # delete: RETURNING ALL OLD *
    ("DELETE FROM \"Music\" WHERE \"Artist\" = 'Acme Band' AND \"SongTitle\" = 'PartiQL Rocks' "
     "RETURNING ALL OLD *",
     "DeleteItem", {"TableName": "Music", "Key": MUSIC_KEY, "ReturnValues": "ALL_OLD"}),
    # delete: "the condition in the WHERE clause ... evaluates to false":
    # ConditionalCheckFailedException
    ("DELETE FROM Music WHERE Artist='Acme Band' AND SongTitle='PartiQL Rocks' "
     "AND \"Year\" < 2000",
     "DeleteItem", {"TableName": "Music", "Key": MUSIC_KEY,
                    "ConditionExpression": "#n0 < :v0",
                    "ExpressionAttributeNames": {"#n0": "Year"},
                    "ExpressionAttributeValues": {":v0": {"N": "2000"}}}),
    # transactions, functions/exists: EXISTS(SELECT ...) is a ConditionCheck
    ("EXISTS(SELECT * FROM Music where Artist='No One You Know' and SongTitle='Call Me Today' "
     "and Awards is  MISSING)",
     "ConditionCheck", {"TableName": "Music",
                        "Key": {"Artist": {"S": "No One You Know"},
                                "SongTitle": {"S": "Call Me Today"}},
                        "ConditionExpression": "attribute_exists(#n0) AND "
                                               "(attribute_not_exists(#n1))",
                        "ExpressionAttributeNames": {"#n0": "Artist", "#n1": "Awards"}}),
]


@pytest.mark.parametrize("statement,operation,request_", WRITE_CASES)
def test_write_translates_into_one_request(statement: str, operation: str,
                                           request_: dict[str, Any]) -> None:
    assert translate(statement) == (operation, request_)


def test_parameters_bind_in_order() -> None:
    """ExecuteStatement API reference: Parameters, one per `?`, in order."""
    statement = "UPDATE Music SET AwardsWon = ? WHERE Artist = ? AND SongTitle = ?"
    operation, request = translate(statement, [{"N": "3"}, {"S": "Acme Band"},
                                               {"S": "PartiQL Rocks"}])
    assert request["Key"] == MUSIC_KEY
    assert request["ExpressionAttributeValues"] == {":v0": {"N": "3"}}


def test_a_question_mark_in_a_string_is_text() -> None:
    # transactions doc example writes '?' in quotes: that is the string "?", not a parameter
    _op, request = translate("INSERT INTO Music value {'Artist':'?','SongTitle':'?'}")
    assert request["Item"] == {"Artist": {"S": "?"}, "SongTitle": {"S": "?"}}


ERROR_CASES = [
    # too few parameters; (too many are accepted, as DynamoDB does)
    ("SELECT * FROM Music WHERE Artist = ? AND SongTitle = ?", [{"S": "a"}],
     "Number of parameters in request and statement don't match."),
    ("SLECT * FROM Music", None,
     "Statement wasn't well formed, can't be processed: Expected data manipulation"),
    ("SELECT * FROM Music WHERE Artist = 'a' AND", None,
     "Statement wasn't well formed, can't be processed: Unexpected end of statement"),
    ("SELECT * FROM \"Music", None,
     "Statement wasn't well formed, can't be processed: Unterminated quoted text"),
    # PartiQL keywords are not bare names (`pad`, `inner` ...)
    ("SELECT * FROM Music WHERE pad = 'none'", None,
     "Statement wasn't well formed, can't be processed: Unexpected keyword: pad"),
    ("SELECT * FROM Music WHERE m.inner = 1", None,
     "Statement wasn't well formed, can't be processed: Invalid path dot component"),
    # update/delete: "This condition must resolve to a single primary key value"
    ("UPDATE Music SET x = 1 WHERE Artist = 'a'", None,
     "Where clause does not contain a mandatory equality on all key attributes"),
    ("DELETE FROM Music WHERE Artist IN ['a'] AND SongTitle = 'b'", None,
     "Where clause does not contain a mandatory equality on all key attributes"),
    ("UPDATE Music SET x = 1 WHERE Artist = 'a' AND Artist = 'b' AND SongTitle = 'c'", None,
     "Multiple conditions on same key Artist. Only single item Update/Insert/Delete are "
     "supported"),
    # delete: only RETURNING ALL OLD *
    ("DELETE FROM Music WHERE Artist = 'a' AND SongTitle = 'b' RETURNING MODIFIED OLD *", None,
     "Invalid returning clause: RETURNING MODIFIED OLD *. Only RETURNING ALL OLD * is allowed "
     "in DELETE statements."),
    ("DELETE FROM Music WHERE Artist = 'a' AND SongTitle = 'b' RETURNING ALL NEW *", None,
     "Invalid returning clause: RETURNING ALL NEW *. Only RETURNING ALL OLD * is allowed in "
     "DELETE statements."),
    ("INSERT INTO Music VALUE {'Artist': 'a', 'SongTitle': 'b'} RETURNING ALL OLD *", None,
     "RETURNING is not supported in INSERT"),
    # insert: "You can only insert one item at a time"
    ("INSERT INTO Music VALUES {'Artist': 'a', 'SongTitle': 'b'}", None,
     "Unsupported operation: Inserting multiple items in a single statement is not supported, "
     "use \"INSERT INTO tableName VALUE item\" instead"),
    ("INSERT INTO Music VALUE ?", [{"M": {}}],
     "Unsupported format in item expression. Please use struct format {...} to express item "
     "values for insert statement."),
    ("INSERT INTO Music VALUE {'Artist': 'a'}", None,
     "Key attribute should be present in the item: Key SongTitle"),
    ("INSERT INTO Music VALUE {'Artist': 'a', 'SongTitle': 'b', 'Artist': 'c'}", None,
     "Duplicate keys in tuple. Key: Artist under root"),
    ("SELECT * FROM Music WHERE Artist = 1", None,
     "Key attribute's data type should match its data type in table's schema: Key Artist"),
    # data types: sets hold strings or numbers, and are never empty
    ("INSERT INTO Music VALUE {'Artist': 'a', 'SongTitle': 'b', 's': <<1, 'x'>>}", None,
     "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags"),
    ("INSERT INTO Music VALUE {'Artist': 'a', 'SongTitle': 'b', 's': <<?>>}", [{"S": "x"}],
     "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags"),
    ("INSERT INTO Music VALUE {'Artist': 'a', 'SongTitle': 'b', 's': <<>>}", None,
     "Empty bags are not supported"),
    # select: "table"."index", at most two components, names never empty
    ("SELECT * FROM \"Music\".\"NoIndex\" WHERE Artist = 'a'", None,
     "The table does not have the specified index"),
    ("SELECT * FROM \"Music\".\"AlbumIndex\".\"x\" WHERE Artist = 'a'", None,
     "A path may contain at most 2 components in the FROM clause"),
    ("SELECT * FROM \"\" WHERE pk = 'p'", None, "Path component cannot be an empty string"),
    ("INSERT INTO \"Music\".\"AlbumIndex\" VALUE {'Artist': 'a', 'SongTitle': 'b'}", None,
     "FROM clause may only contain a single table name in data manipulation statements"),
    ("UPDATE \"Music\".\"AlbumIndex\" SET x = 1 WHERE Artist = 'a' AND SongTitle = 'b'", None,
     "This operation is not supported on an index"),
    ("DELETE FROM \"Music\".\"AlbumIndex\" WHERE Artist = 'a' AND SongTitle = 'b'", None,
     "This operation is not supported on an index"),
    # functions: EXISTS is no WHERE function; functions need a path; arity is checked
    ("SELECT * FROM Music WHERE Artist = 'a' AND EXISTS(ss)", None,
     "Unrecognized function: exists at 1:44:6"),
    ("SELECT * FROM Music WHERE Artist = 'a' AND upper(x) = 'A'", None,
     "Unrecognized function: upper at 1:44:5"),
    ("SELECT * FROM Music WHERE Artist = 'a' AND attribute_exists('ss')", None,
     "Operator or function requires a document path; operator or function: attribute_exists"),
    ("SELECT * FROM Music WHERE Artist = 'a' AND attribute_exists()", None,
     "Incorrect number of operands for operator or function; operator or function: "
     "attribute_exists, number of operands: 0"),
    ("SELECT attribute_exists(ss) FROM Music WHERE Artist = 'a'", None,
     "Unexpected path component at 1:8:16"),
    ("SELECT a.z, b.z FROM Music", None, "Duplicate identifiers in select clause: z"),
    ("SELECT *, a FROM Music", None,
     "Other attributes should not be present in the projection when '*' is used."),
    ("SELECT * FROM Music LIMIT 3", None, "Unsupported clause: LIMIT"),
    ("SELECT * FROM Music AS m", None, "Aliasing is not supported"),
    # set_add / set_delete (update doc): the target, two arguments, the second a set
    ("UPDATE Music SET ss = set_add(ss, 'x') WHERE Artist = 'a' AND SongTitle = 'b'", None,
     "The second argument to SET_ADD must be a value with type SET at 1:31:2"),
    ("UPDATE Music SET t = set_add(ss, <<'x'>>) WHERE Artist = 'a' AND SongTitle = 'b'", None,
     "The first argument to SET_ADD must equal the assignment value at 1:22:7"),
    ("UPDATE Music SET ss = set_delete(ss) WHERE Artist = 'a' AND SongTitle = 'b'", None,
     "SET_DELETE must have exactly two arguments at 1:23:10"),
    # operators: only + and - (in updates), MISSING only with IS
    ("SELECT * FROM Music WHERE x + 1 = 2", None,
     "Unsupported operator in Condition Expression. Operator: +"),
    ("SELECT * FROM Music WHERE x = MISSING", None, "MISSING must be compared using IS operator"),
    ("SELECT * FROM Music WHERE x IS DATE", None,
     "Unsupported data type for IS operator: DATE. Supported data types are [MISSING, NULL, "
     "BOOLEAN, BLOB, STRING, NUMERIC, STRUCT, TUPLE, LIST]"),
    # select ORDER BY: needs the partition key in the WHERE clause; orders by key attributes
    ("SELECT * FROM Music ORDER BY Artist", None,
     "Must have WHERE clause in the statement when using ORDER BY clause."),
    ("SELECT * FROM Music WHERE x = 1 ORDER BY Artist", None,
     "Must have at least one non-optional hash key condition in WHERE clause when using ORDER "
     "BY clause."),
    ("SELECT * FROM Music WHERE Artist IN ['a', 'b'] ORDER BY SongTitle", None,
     "Must have hash key in ORDER BY clause when more than one hash key condition specified in "
     "WHERE clause."),
    ("SELECT * FROM Music WHERE Artist = 'a' ORDER BY x", None,
     "Variable reference x in ORDER BY clause must be part of the primary key"),
    # functions/exists: EXISTS needs the full key and one other condition
    ("EXISTS(SELECT * FROM Music WHERE Artist = 'a' AND SongTitle = 'b')", None,
     "EXISTS() must contain a single item read with additional condition"),
]


@pytest.mark.parametrize("statement,parameters,message", ERROR_CASES)
def test_statement_is_refused_with_dynamodbs_message(statement: str, parameters: Any,
                                                     message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        translate(statement, parameters)
    assert caught.value.message == message


def test_too_many_parameters_are_accepted() -> None:
    reads, _residual = translate("SELECT * FROM Orders WHERE OrderID = ?",
                                 [{"N": "1"}, {"N": "2"}])
    assert reads[0][1]["Key"] == {"OrderID": {"N": "1"}}


def test_at_most_fifty_partition_key_values() -> None:
    """operators: IN takes "at max 50 hash attribute values"."""
    values = ", ".join(str(i) for i in range(50))
    reads, _ = translate(f"SELECT * FROM Orders WHERE OrderID IN [{values}]")
    assert len(reads) == 50
    with pytest.raises(ValidationError):
        translate(f"SELECT * FROM Orders WHERE OrderID IN [{values}, 50]")


def test_repeated_partition_key_values_read_once() -> None:
    reads, _ = translate("SELECT * FROM Orders WHERE OrderID IN [1, 1, 2] OR OrderID = 2")
    assert [read[1]["Key"] for read in reads] == [{"OrderID": {"N": "1"}},
                                                  {"OrderID": {"N": "2"}}]


@pytest.mark.parametrize("statement", [
    "SELECT * FROM Music WHERE Artist = 'a'",  # no sort key
    "SELECT * FROM Music WHERE Artist = 'a' AND SongTitle = 'b' AND x = 1",  # extra condition
    "SELECT * FROM Music WHERE Artist IN ['a'] AND SongTitle = 'b'",  # not an equality
    "SELECT * FROM \"Music\".\"AlbumIndex\" WHERE AlbumTitle = 'x' AND \"Year\" = 1",  # an index
])
def test_a_batch_select_reads_one_item_by_its_full_key(statement: str) -> None:
    """BatchExecuteStatement API reference: "Each read statement in a BatchExecuteStatement
    must specify an equality condition on all key attributes"."""
    with pytest.raises(ValidationError) as caught:
        translate(statement, mode=p.BATCH)
    assert caught.value.message == ("Select statements within BatchExecuteStatement must "
                                    "specify the primary key in the where clause.")


def test_a_transaction_select_reads_one_item_and_no_index() -> None:
    reads, residual = translate("SELECT a FROM Music WHERE Artist = 'x' AND SongTitle = 'y'",
                                mode=p.TRANSACTION)
    assert reads == [["GetItem", {"TableName": "Music",
                                  "Key": {"Artist": {"S": "x"}, "SongTitle": {"S": "y"}},
                                  "ProjectionExpression": "#n0",
                                  "ExpressionAttributeNames": {"#n0": "a"}}]]
    assert residual is None
    with pytest.raises(ValidationError) as caught:
        translate("SELECT * FROM \"Music\".\"AlbumIndex\" WHERE AlbumTitle = 'x' AND \"Year\" = 1",
                  mode=p.TRANSACTION)
    assert caught.value.message == "Reads on indices are not supported within transactions."
    with pytest.raises(ValidationError) as caught:
        translate("SELECT * FROM Music WHERE Artist = 'x'", mode=p.TRANSACTION)
    assert caught.value.message == ("Select statements within ExecuteTransaction must specify "
                                    "the primary key in the where clause.")


def test_consistent_read_on_a_global_index_is_refused() -> None:
    statement = "SELECT * FROM \"Music\".\"AlbumIndex\" WHERE AlbumTitle = 'x'"
    node = p.parse(statement)
    assert isinstance(node, p.Select)
    with pytest.raises(ValidationError) as caught:
        p.translate_select(node, SCHEMAS["Music"], statement, consistent_read=True)
    assert caught.value.message == ("Strongly consistent read is not supported on Global "
                                    "Secondary Indexes")
    local = "SELECT * FROM \"Music\".\"YearIndex\" WHERE Artist = 'x'"
    node = p.parse(local)
    assert isinstance(node, p.Select)
    plan = p.translate_select(node, SCHEMAS["Music"], local, consistent_read=True)
    assert plan.reads[0][1]["IndexName"] == "YearIndex"
