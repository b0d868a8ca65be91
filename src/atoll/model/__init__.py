"""Values: attribute values, decimal numbers, key encoding, item size (pure code).

Atoll keeps attribute values in DynamoDB's own JSON shape (`{"S": "x"}`, `{"N": "1.5"}`,
`{"M": {...}}`) from the wire to the disk: validation normalises them once on the way in
and a stored item is the same bytes a GetItem answers with.
"""
