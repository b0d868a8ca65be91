"""The PartiQL lexer: statement text in, tokens with their positions out.

Theory of operation: one left-to-right pass over the text. A token is a kind, its text
(for strings and quoted names: the unescaped content) and where it starts, as DynamoDB
reports positions in its messages (`at <line>:<column>:<length>`, counted from 1).
Whitespace and comments (`-- ...` to the end of the line, `/* ... */`) separate tokens.

Kinds:
- IDENT: a bare name (`Artist`, `begins_with`); keywords are IDENTs compared
  case-insensitively by the parser, because most PartiQL keywords are only keywords in
  one position (`VALUE`, `OLD`, `NEW`).
- QUOTED: a double-quoted name (`"Artist"`, `""` stands for one `"`): always a name.
- STRING: a single-quoted string (`'it''s'`, `''` stands for one `'`).
- NUMBER: `1`, `1.5`, `.5`, `1e3` (a sign is an operator, as in SQL).
- PARAM: `?`.
- OP: punctuation and operators: `( ) [ ] { } , . : ; * + - = <> != < <= > >= << >>`.
- END: after the last token.
"""

from __future__ import annotations

from dataclasses import dataclass

from atoll.errors import ValidationError

IDENT = "IDENT"
QUOTED = "QUOTED"
STRING = "STRING"
NUMBER = "NUMBER"
PARAM = "PARAM"
OP = "OP"
END = "END"

NOT_WELL_FORMED = "Statement wasn't well formed, can't be processed: "
MAX_TOKENS = 10_000  # a statement is at most 8192 characters; this bounds the token list

_TWO_CHAR_OPS = ("<>", "!=", "<=", ">=", "<<", ">>")
_ONE_CHAR_OPS = "()[]{},.:;*+-=<>"


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    offset: int  # index of the first character in the statement
    length: int  # characters of the statement the token spans

    def is_word(self, *words: str) -> bool:
        """A bare name equal (case-insensitively) to one of `words` (given upper case)."""
        return self.kind == IDENT and self.text.upper() in words


def malformed(detail: str) -> ValidationError:
    return ValidationError(NOT_WELL_FORMED + detail)


def position(statement: str, offset: int, length: int) -> str:
    """`line:column:length` of the text at `offset`, as DynamoDB's messages give it."""
    line = statement.count("\n", 0, offset) + 1
    column = offset - (statement.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{column}:{length}"


def tokenize(statement: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    n = len(statement)
    while i < n:
        if len(tokens) >= MAX_TOKENS:
            raise malformed("Statement has too many tokens")
        c = statement[i]
        if c.isspace():
            i += 1
        elif statement.startswith("--", i):
            end = statement.find("\n", i)
            i = n if end < 0 else end + 1
        elif statement.startswith("/*", i):
            end = statement.find("*/", i + 2)
            if end < 0:
                raise malformed("Unterminated comment")
            i = end + 2
        elif c == "'" or c == '"':
            i = _quoted(statement, i, tokens)
        elif c.isdigit() or (c == "." and i + 1 < n and statement[i + 1].isdigit()):
            i = _number(statement, i, tokens)
        elif c.isalpha() or c == "_" or c == "$":
            start = i
            while i < n and (statement[i].isalnum() or statement[i] in "_$"):
                i += 1
            tokens.append(Token(IDENT, statement[start:i], start, i - start))
        elif c == "?":
            tokens.append(Token(PARAM, "?", i, 1))
            i += 1
        elif statement[i:i + 2] in _TWO_CHAR_OPS:
            tokens.append(Token(OP, statement[i:i + 2], i, 2))
            i += 2
        elif c in _ONE_CHAR_OPS:
            tokens.append(Token(OP, c, i, 1))
            i += 1
        else:
            raise malformed(f"Unexpected character: {c}")
    tokens.append(Token(END, "", n, 0))
    return tokens


def _quoted(statement: str, start: int, tokens: list[Token]) -> int:
    """A '...' string or "..." name; a doubled quote inside stands for one."""
    quote = statement[start]
    parts: list[str] = []
    i = start + 1
    while True:
        end = statement.find(quote, i)
        if end < 0:
            raise malformed("Unterminated quoted text")
        parts.append(statement[i:end])
        if statement.startswith(quote * 2, end):
            parts.append(quote)
            i = end + 2
            continue
        i = end + 1
        break
    kind = STRING if quote == "'" else QUOTED
    tokens.append(Token(kind, "".join(parts), start, i - start))
    return i


def _number(statement: str, start: int, tokens: list[Token]) -> int:
    n = len(statement)
    i = start
    while i < n and statement[i].isdigit():
        i += 1
    if i < n and statement[i] == "." and not statement.startswith("..", i):
        i += 1
        while i < n and statement[i].isdigit():
            i += 1
    if i < n and statement[i] in "eE":
        j = i + 1
        if j < n and statement[j] in "+-":
            j += 1
        if j < n and statement[j].isdigit():
            i = j
            while i < n and statement[i].isdigit():
                i += 1
    if i < n and (statement[i].isalpha() or statement[i] == "_"):
        raise malformed(f"Invalid number: {statement[start:i + 1]}")
    tokens.append(Token(NUMBER, statement[start:i], start, i - start))
    return i
