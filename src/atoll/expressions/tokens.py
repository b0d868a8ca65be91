"""Tokenizer shared by the five expression kinds.

Theory of operation: one regular expression splits the text into tokens; whitespace is
skipped. Kinds follow DynamoDB's lexer as observed through its error messages:

  NAME      [A-Za-z][A-Za-z0-9_]*        attribute names, keywords, function names
  NAMEREF   #[A-Za-z0-9_]+               expression attribute names
  VALUEREF  :[A-Za-z0-9_]+               expression attribute values
  NUMBER    [0-9]+                       list indexes only
  PUNCT     ( ) [ ] , . = <> <= >= < > + -
  ERROR     any other single character (`_`, `$`, a lone `#` or `:` ...)
  EOF       end of text, spelled "<EOF>" in messages

A lexical error is not raised here: the ERROR token is handed to the parser, which
reports the first token it cannot accept. That reproduces DynamoDB's message shape
`Syntax error; token: "$", near: "hi$there"`, where *near* is the source text from the
token before the offending one to the token after it (`syntax_error`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from atoll.errors import ValidationError

NAME = "NAME"
NAMEREF = "NAMEREF"
VALUEREF = "VALUEREF"
NUMBER = "NUMBER"
PUNCT = "PUNCT"
ERROR = "ERROR"
EOF = "EOF"

_TOKEN_RE = re.compile(
    r"""(?:
      (?P<NAME>[A-Za-z][A-Za-z0-9_]*)
    | (?P<NAMEREF>\#[A-Za-z0-9_]+)
    | (?P<VALUEREF>:[A-Za-z0-9_]+)
    | (?P<NUMBER>[0-9]+)
    | (?P<PUNCT><>|<=|>=|[()\[\],.=<>+\-])
    | (?P<ERROR>.)
    )""",
    re.VERBOSE | re.DOTALL,
)
_SPACE_RE = re.compile(r"\s*")


class Token(NamedTuple):
    kind: str
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """All tokens of `text`, ending with one EOF token."""
    tokens: list[Token] = []
    append = tokens.append
    pos = 0
    length = len(text)
    match = _TOKEN_RE.match
    skip = _SPACE_RE.match
    while True:
        pos = skip(text, pos).end()  # type: ignore[union-attr]
        if pos >= length:
            break
        found = match(text, pos)
        kind = found.lastgroup if found is not None else None
        if found is None or kind is None:  # cannot happen: ERROR matches any character
            break
        append(Token(kind, found.group(kind), pos, found.end()))
        pos = found.end()
    append(Token(EOF, "<EOF>", length, length))
    return tokens


def syntax_error(kind: str, text: str, tokens: list[Token], index: int) -> ValidationError:
    """DynamoDB's syntax error for the token at `index`."""
    token = tokens[index]
    start = tokens[index - 1].start if index > 0 else token.start
    after = tokens[index + 1] if index + 1 < len(tokens) else token
    end = after.end if after.kind != EOF else token.end
    near = text[start:end]
    return ValidationError(
        f'Invalid {kind}: Syntax error; token: "{token.text}", near: "{near}"')
