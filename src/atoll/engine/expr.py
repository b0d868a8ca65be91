"""One request's expressions: parse (cached), check names/values, evaluate.

DynamoDB checks ExpressionAttributeNames/Values across *all* expressions of a request:
every `#n`/`:v` used must be defined and every one defined must be used. `RequestExpressions`
parses each expression parameter once, collects what it uses and performs those checks.

Legacy parameters (Expected, AttributeUpdates, QueryFilter, ScanFilter, KeyConditions) are
translated by `atoll.expressions.legacy` into the same parsed objects, stored under the
expression parameter they stand for, with their generated names and values merged in:
the engine evaluates one kind of object whichever form the request used.
"""

from __future__ import annotations

import functools
from typing import Any

from atoll import expressions as ex
from atoll.engine.tabledef import TableDef
from atoll.errors import InvalidValue, ValidationError
from atoll.expressions import legacy as lg
from atoll.model.values import check_value

# The order DynamoDB lists expression parameters in its messages.
_MESSAGE_ORDER = ("UpdateExpression", "ConditionExpression", "ProjectionExpression",
                  "FilterExpression", "KeyConditionExpression")
# The expression parameter each legacy parameter stands for.
_LEGACY_AS = {"Expected": "ConditionExpression", "AttributeUpdates": "UpdateExpression",
              "QueryFilter": "FilterExpression", "ScanFilter": "FilterExpression",
              "KeyConditions": "KeyConditionExpression"}


_KEY_SETS: dict[tuple[tuple[str, ...], tuple[str, ...]], frozenset[str]] = {}


def _keys_of(params: tuple[str, ...], legacy: tuple[str, ...]) -> frozenset[str]:
    """Every request key that gives a RequestExpressions something to do."""
    keys = _KEY_SETS.get((params, legacy))
    if keys is None:
        keys = _KEY_SETS[(params, legacy)] = frozenset(
            (*params, *legacy, "ExpressionAttributeNames", "ExpressionAttributeValues"))
    return keys


@functools.cache
def _in_message_order(params: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(p for p in _MESSAGE_ORDER if p in params)


class RequestExpressions:
    """Parsed expressions of one request, with its names and (normalised) values.

    `legacy`: the legacy parameters the operation accepts, in the order DynamoDB names
    them; using one together with an expression parameter is rejected."""

    def __init__(self, request: dict[str, Any], params: tuple[str, ...],
                 legacy: tuple[str, ...] = ()) -> None:
        self.parsed: dict[str, Any] = {}
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        # What validation returned, per parameter: evaluating those later skips the
        # checks (they ran here, before the write job).
        self.validated: dict[str, Any] = {}
        if request.keys().isdisjoint(_keys_of(params, legacy)):
            return  # the hot path of plain writes and reads: nothing to parse or check
        if legacy:
            lg.check_mixing(request, _in_message_order(params), legacy)
        names = request.get("ExpressionAttributeNames")
        values = request.get("ExpressionAttributeValues")
        for param in params:
            text = request.get(param)
            if text is None:
                continue
            if text == "":
                raise ValidationError(f"Invalid {param}: The expression can not be empty;")
            if param in ("ConditionExpression", "FilterExpression"):
                self.parsed[param] = ex.parse_condition(text, param)
            elif param == "UpdateExpression":
                self.parsed[param] = ex.parse_update(text)
            elif param == "ProjectionExpression":
                self.parsed[param] = ex.parse_projection(text)
            else:
                self.parsed[param] = ex.parse_key_condition(text)
        if names is not None and not names:
            raise ValidationError("ExpressionAttributeNames must not be empty")
        if values is not None and not values:
            raise ValidationError("ExpressionAttributeValues must not be empty")
        if not self.parsed:
            if names is not None:
                raise ValidationError(
                    "ExpressionAttributeNames can only be specified when using expressions")
            if values is not None:
                raise ValidationError(_values_without_expressions(params))
        self.names = names or {}
        self.values = values or {}
        for name, value in self.values.items():
            try:
                check_value(value)
            except InvalidValue as exc:
                # worded per operation by the api layer: some name the key, some do not
                raise exc.for_key(name) from None
        self._check_names_and_values()
        # Checks that depend on the values (operand types, BETWEEN order, overlapping
        # paths once #names are known) fail the request even if nothing is evaluated.
        self.validated = {
            param: ex.validate(parsed, self.names, self.values)
            for param, parsed in self.parsed.items()}
        if legacy and any(p in request for p in legacy):
            self._translate_legacy(request, legacy)

    def _translate_legacy(self, request: dict[str, Any], legacy: tuple[str, ...]) -> None:
        lg.check_conditional_operator(
            request, tuple(p for p in ("Expected", "QueryFilter", "ScanFilter") if p in legacy))
        attributes = request.get("AttributesToGet")
        if "AttributesToGet" in legacy and type(attributes) is list:
            lg.check_attributes_to_get(attributes)
        placeholders = lg.Placeholders()
        operator = request.get("ConditionalOperator")
        for param in legacy:
            spec = request.get(param)
            if spec is None or param not in _LEGACY_AS:
                continue
            translated: Any
            if param == "Expected":
                translated = lg.expected(spec, operator, placeholders)
            elif param == "AttributeUpdates":
                translated = lg.attribute_updates(spec, placeholders)
            elif param == "KeyConditions":
                translated = lg.key_condition(spec, placeholders)
            else:
                translated = lg.filter_condition(param, spec, operator, placeholders)
            if translated is not None:
                self.parsed[_LEGACY_AS[param]] = translated
                self.validated.pop(_LEGACY_AS[param], None)  # not validated above
        if placeholders.names:
            self.names = {**self.names, **placeholders.names}
        if placeholders.values:
            self.values = {**self.values, **placeholders.values}

    def _check_names_and_values(self) -> None:
        names_used: set[str] = set()
        values_used: set[str] = set()
        if len(self.parsed) == 1:  # one expression (a Query's key condition): its own sets
            for parsed in self.parsed.values():
                if self.names.keys() == parsed.names_used \
                        and self.values.keys() == parsed.values_used:
                    return
        for parsed in self.parsed.values():
            names_used |= parsed.names_used
            values_used |= parsed.values_used
        if self.names.keys() == names_used and self.values.keys() == values_used:
            return  # the usual case: every name and value defined and used
        for name in sorted(names_used):
            if name not in self.names:
                raise ValidationError("Invalid " + self._param_using(name, "names_used") +
                                      ": An expression attribute name used in the document path "
                                      f"is not defined; attribute name: {name}")
        for value in sorted(values_used):
            if value not in self.values:
                raise ValidationError("Invalid " + self._param_using(value, "values_used") +
                                      ": An expression attribute value used in expression is not "
                                      f"defined; attribute value: {value}")
        unused_names = [n for n in self.names if n not in names_used]
        if unused_names:
            raise ValidationError("Value provided in ExpressionAttributeNames unused in expressions:"
                                  " keys: {" + ", ".join(unused_names) + "}")
        unused_values = [v for v in self.values if v not in values_used]
        if unused_values:
            raise ValidationError("Value provided in ExpressionAttributeValues unused in expressions:"
                                  " keys: {" + ", ".join(unused_values) + "}")

    def _param_using(self, token: str, attribute: str) -> str:
        for param, parsed in self.parsed.items():
            if token in getattr(parsed, attribute):
                return param
        return "expression"

    def get(self, param: str) -> Any:
        return self.parsed.get(param)

    def update_paths(self) -> Any:
        """The UpdateExpression's resolved paths if validation produced them, else None
        (then `apply_update` checks and resolves again)."""
        return self.validated.get("UpdateExpression")

    def condition_holds(self, param: str, item: dict[str, Any] | None) -> bool:
        condition = self.parsed.get(param)
        if condition is None:
            return True
        return ex.evaluate_condition(condition, item, self.names, self.values,
                                     validated=param in self.validated)

    def check_scalar_keys(self, table: TableDef, params: tuple[str, ...],
                          table_keys: bool = True) -> None:
        """Refuse a path into a key attribute (`pk.a`, `gsi_key[0]`) in the expressions
        `params`: key attributes are scalars, and DynamoDB rejects such a path outright
        rather than finding nothing there (dynalite's db.validateKeyPaths, recorded
        against DynamoDB; alternator's test_gsi_wrong_type_attribute_update_nested).
        `table_keys=False` checks only secondary index keys (an update of a table key
        attribute has its own error)."""
        present = [self.parsed[p] for p in params if p in self.parsed]
        if not present:
            return  # the usual read: no projection, no filter
        keys = set(table.key_names()) if table_keys else set()
        index_keys = {k for i in table.indexes for k in i.key_names()} - set(table.key_names())
        if not keys and not index_keys:
            return
        for parsed in present:
            for path in ex.document_paths(parsed, self.names):
                if len(path) < 2 or path[0] not in keys and path[0] not in index_keys:
                    continue
                which = "Key" if path[0] in keys else "IndexKey"
                raise ValidationError("Key attributes must be scalars; list random access '[]' "
                                      f"and map lookup '.' are not allowed: {which}: {path[0]}")

    def project(self, item: dict[str, Any]) -> dict[str, Any]:
        projection = self.parsed.get("ProjectionExpression")
        if projection is None:
            return item
        return ex.project(item, projection, self.names)


def _values_without_expressions(params: tuple[str, ...]) -> str:
    message = "ExpressionAttributeValues can only be specified when using expressions"
    named = [p for p in _in_message_order(params) if p != "ProjectionExpression"]
    if not named:
        return message
    return f"{message}: {' and '.join(named)} {'are' if len(named) > 1 else 'is'} null"
