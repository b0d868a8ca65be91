"""`invariant()` — a check that stays on under `python -O` (unlike `assert`).

Use it for "this cannot happen"; use a typed exception from `atoll.errors` for what can
(bad input, a dead peer).
"""


class InvariantViolation(AssertionError):
    """An internal invariant did not hold: a bug in Atoll, never bad input."""


def invariant(condition: object, message: str = "invariant violated") -> None:
    if not condition:
        raise InvariantViolation(message)
