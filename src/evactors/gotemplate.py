"""A subset of Go's text/template, for `--format` flags: the part docker and nerdctl users write.

`compile_template(text, schema)` parses a template once into literal strings and small
accessors, so `Template.render`, which may run for every client on every event, is one
join. A `RecordSchema` says what a template sees of a record: its fields in order (how
`{{.Field}}` prints each, and the value `{{json .Field}}` encodes), and which are maps.

Supported actions, with spaces allowed inside the braces and Go's trim markers (`{{- `
trims the whitespace before the action, ` -}}` the whitespace after it):

    {{.Field}}                a field, printed as Go prints it; a map prints as
                              `map[k1:v1 k2:v2]`, keys sorted
    {{.Map.key}}              a map entry, for keys that are Go identifiers;
                              `<no value>` when the key is missing, as in Go
    {{index .Map "a/b"}}      a map entry by any key (Go string or raw string);
                              "" when missing, as in Go
    {{json .Field}}           the field as JSON; a missing map entry is `null`
    {{json .}}                the whole record as one JSON object
    {{.}}                     the whole record as Go prints a struct: `{v1 v2 ...}`

Everything else (pipelines, if/range/with, variables, constants, comments, functions
other than json and index, fields that do not exist) is a `TemplateError` at compile
time, never a surprise at render time.

The JSON is what the `json` function of docker/cli's `templates` package writes: Go's
encoding/json, compact, with HTML escaping switched off (`SetEscapeHTML(false)`), so
`<`, `>` and `&` are printed as they are, while U+2028 and U+2029 are still escaped.
Maps are objects with sorted keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

import attrs

R = TypeVar("R")

Accessor = Callable[[Any], str]
"""What a compiled action is: one record in, its piece of the output out."""

# What Go prints for a map entry that is not there (text/template's missingkey=default).
NO_VALUE: Final = "<no value>"

# Go's words for actions and functions this subset leaves out, to say so rather than
# call them unknown.
_UNSUPPORTED_WORDS: Final = frozenset({
    "if", "else", "end", "range", "with", "define", "template", "block", "break",
    "continue", "nil", "true", "false", "and", "or", "not", "len", "print", "printf",
    "println", "html", "js", "urlquery", "slice", "call", "eq", "ne", "lt", "le", "gt",
    "ge", "split", "join", "title", "lower", "upper", "pad", "truncate",
})  # fmt: skip

_LEFT_DELIMITER: Final = "{{"
_RIGHT_DELIMITER: Final = "}}"
# Go's trim markers: a `-` after `{{` or before `}}`, with one of these on its inner side.
_SPACE_CHARACTERS: Final = " \t\r\n"
_TOKEN: Final = re.compile(
    r"""
      (?P<space> [ \t\r\n]+ )
    | (?P<field> (?:\.[^\W\d]\w*)+ )     # .Labels.key: identifiers after dots, no spaces
    | (?P<dot> \. )
    | (?P<identifier> [^\W\d]\w* )
    | (?P<string> "(?:[^"\\\n]|\\[^\n])*" )
    | (?P<raw_string> `[^`]*` )
    """,
    re.VERBOSE,
)
# One piece of a quoted string's body: plain text, or one of Go's escapes.
_STRING_PART: Final = re.compile(
    r"""
      [^\\]+
    | \\ (?: (?P<simple>[abfnrtv\\"]) | x(?P<hex>[0-9a-fA-F]{2}) | (?P<octal>[0-7]{3})
          | u(?P<rune4>[0-9a-fA-F]{4}) | U(?P<rune8>[0-9a-fA-F]{8}) )
    """,
    re.VERBOSE,
)
# What Go syntax outside the subset starts with, and what to tell the client.
_UNSUPPORTED_SYNTAX: Final = (
    ("|", "pipelines are not supported"),
    ("(", "parentheses are not supported"),
    (")", "parentheses are not supported"),
    ("$", "variables are not supported"),
    ("/*", "comments are not supported"),
    ("'", "constants are not supported"),
    ('"', "unterminated quoted string"),
    ("`", "unterminated raw string"),
)
_NUMBER: Final = re.compile(r"[+-]?\.?[0-9]")
_SIMPLE_ESCAPES: Final = {
    "a": b"\a", "b": b"\b", "f": b"\f", "n": b"\n", "r": b"\r", "t": b"\t", "v": b"\v",
    "\\": b"\\", '"': b'"',
}  # fmt: skip


class TemplateError(ValueError):
    """A template that cannot be compiled; the message quotes it and says where and why.

    Attributes:
      template: The template text, as the client sent it.
      offset: Where in it the problem is (0-based, in characters).
      reason: What the problem is.
    """

    def __init__(self, template: str, offset: int, reason: str) -> None:
        line = template.count("\n", 0, offset) + 1
        column = offset - (template.rfind("\n", 0, offset) + 1) + 1
        super().__init__(f"invalid template {_quoted(template)}: {line}:{column}: {reason}")
        self.template = template
        self.offset = offset
        self.reason = reason


@attrs.frozen
class RecordSchema(Generic[R]):
    """What a template sees of a record of type R.

    Attributes:
      texts: Each field, in the record's order, and how `{{.Field}}` prints it.
      values: Each field and the value `{{json .Field}}` encodes (same keys and order).
      maps: The fields that are maps of strings, and how to get the map.
    """

    texts: Mapping[str, Callable[[R], str]]
    values: Mapping[str, Callable[[R], object]]
    maps: Mapping[str, Callable[[R], Mapping[str, str]]] = MappingProxyType({})

    @property
    def field_list(self) -> str:
        return ", ".join(f".{name}" for name in self.texts)


@attrs.frozen
class Template(Generic[R]):
    """A compiled template; make one with `compile_template`.

    Attributes:
      text: The template as written (two templates are equal when their texts are).
      pieces: Literal text and accessors, in output order.
    """

    text: str
    pieces: tuple[str | Accessor, ...] = attrs.field(eq=False, repr=False)

    def render(self, record: R) -> str:
        """The template's output for one record (without a trailing newline)."""
        return "".join([p if isinstance(p, str) else p(record) for p in self.pieces])


def go_map_text(mapping: Mapping[str, str]) -> str:
    """A map as Go's fmt prints it: keys sorted (since Go 1.12)."""
    return "map[" + " ".join(f"{key}:{mapping[key]}" for key in sorted(mapping)) + "]"


def sorted_dict(mapping: Mapping[str, str]) -> dict[str, str]:
    """A map as encoding/json writes it: keys sorted."""
    return {key: mapping[key] for key in sorted(mapping)}


@attrs.frozen
class _Token:
    kind: str  # a group name of _TOKEN
    text: str
    offset: int


def compile_template(text: str, schema: RecordSchema[R]) -> Template[R]:
    """Parse a `--format` template once, for rendering many records.

    Args:
      text: The template, in the Go text/template subset the module docstring lists.
      schema: What the template may refer to.

    Returns:
      The compiled template.

    Raises:
      TemplateError: For an unclosed or empty action, an unknown field or function, or
        any Go template feature outside the subset; the message gives line and column.
    """
    pieces: list[str | Accessor] = []
    position = 0
    trim_leading_space = False
    while True:
        action_start = text.find(_LEFT_DELIMITER, position)
        literal = text[position:] if action_start < 0 else text[position:action_start]
        trim_trailing_space = action_start >= 0 and _has_left_trim_marker(text, action_start)
        if trim_leading_space:
            literal = literal.lstrip(_SPACE_CHARACTERS)
        if trim_trailing_space:
            literal = literal.rstrip(_SPACE_CHARACTERS)
        if literal:
            pieces.append(literal)
        if action_start < 0:
            return Template(text, tuple(pieces))
        tokens_start = action_start + len(_LEFT_DELIMITER) + (2 if trim_trailing_space else 0)
        tokens, position, trim_leading_space = _scan_action(
            text, action_start, tokens_start, schema
        )
        pieces.append(_compile_action(text, action_start, tokens, schema))


def _has_left_trim_marker(text: str, action_start: int) -> bool:
    marker = action_start + len(_LEFT_DELIMITER)
    after_marker = text[marker + 1 : marker + 2]
    return (
        text.startswith("-", marker)
        and len(after_marker) == 1
        and after_marker in _SPACE_CHARACTERS
    )


def _scan_action(
    text: str, action_start: int, position: int, schema: RecordSchema[Any]
) -> tuple[list[_Token], int, bool]:
    """The tokens of one action, where the text after it starts, and whether it ends
    with a trim marker."""
    tokens: list[_Token] = []
    while True:
        if text.startswith(_RIGHT_DELIMITER, position):
            return tokens, position + len(_RIGHT_DELIMITER), False
        if (
            text.startswith("-" + _RIGHT_DELIMITER, position)
            and text[position - 1] in _SPACE_CHARACTERS
        ):
            return tokens, position + 1 + len(_RIGHT_DELIMITER), True
        if position == len(text):
            raise TemplateError(text, action_start, "unclosed action")
        match = _TOKEN.match(text, position)
        if match is None:
            raise TemplateError(text, position, _unexpected(text, position))
        token = _Token(match.lastgroup or "", match[0], position)
        position = match.end()
        if token.kind == "space":
            continue
        # Go ends an operand only at a space or the delimiter: `.ID-}}` and
        # `.Labels.nerdctl/name` are errors, not `.ID` followed by something else.
        if position < len(text) and not (
            text[position] in _SPACE_CHARACTERS or text.startswith(_RIGHT_DELIMITER, position)
        ):
            raise TemplateError(text, position, _bad_character(text[position], token, schema))
        tokens.append(token)


def _bad_character(character: str, token: _Token, schema: RecordSchema[Any]) -> str:
    reason = f"bad character {_quoted(character)} after {token.text}"
    first_name = token.text[1:].split(".")[0]
    if token.kind == "field" and first_name in schema.maps:
        reason += f' (for such keys, write {{{{index .{first_name} "key"}}}})'
    return reason


def _unexpected(text: str, position: int) -> str:
    for start, reason in _UNSUPPORTED_SYNTAX:
        if text.startswith(start, position):
            return reason
    if _NUMBER.match(text, position):
        return "constants are not supported"
    return f"unexpected {_quoted(text[position])}"


def _compile_action(
    text: str, action_start: int, tokens: Sequence[_Token], schema: RecordSchema[Any]
) -> Accessor:
    if not tokens:
        raise TemplateError(text, action_start, "empty action")
    head, *arguments = tokens
    if head.kind in {"field", "dot"}:
        if arguments:
            raise TemplateError(
                text, arguments[0].offset, f"{head.text} is not a function: it takes no arguments"
            )
        return _text_accessor(text, head, schema)
    if head.kind == "identifier":
        if head.text == "json":
            return _json_accessor(text, head, arguments, schema)
        if head.text == "index":
            return _index_accessor(text, head, arguments, schema)
        if head.text in _UNSUPPORTED_WORDS:
            raise TemplateError(text, head.offset, f'"{head.text}" is not supported')
        raise TemplateError(
            text, head.offset, f'function "{head.text}" not defined (use json or index)'
        )
    raise TemplateError(text, head.offset, "constants are not supported")


def _resolve(text: str, token: _Token, schema: RecordSchema[Any]) -> tuple[str, str | None]:
    """The field a `.Field` or `.Map.key` token names, and the map key if any."""
    field, *keys = token.text[1:].split(".")
    if field not in schema.texts:
        raise TemplateError(
            text, token.offset, f'unknown field ".{field}" (use {schema.field_list} or .)'
        )
    if not keys:
        return field, None
    key_offset = token.offset + 1 + len(field)
    if field not in schema.maps:
        raise TemplateError(text, key_offset, f'.{field} is not a map: it has no "{keys[0]}"')
    if len(keys) > 1:
        raise TemplateError(
            text,
            key_offset + 1 + len(keys[0]),
            f'.{field}.{keys[0]} is a string: it has no "{keys[1]}"',
        )
    return field, keys[0]


def _text_accessor(text: str, token: _Token, schema: RecordSchema[Any]) -> Accessor:
    if token.kind == "dot":
        field_texts = tuple(schema.texts.values())
        # fmt's %v of a struct: its fields' values, space-separated, in braces.
        return lambda record: "{" + " ".join([text_of(record) for text_of in field_texts]) + "}"
    field, key = _resolve(text, token, schema)
    if key is None:
        return schema.texts[field]
    mapping_of = schema.maps[field]
    return lambda record: mapping_of(record).get(key, NO_VALUE)


def _json_accessor(
    text: str, head: _Token, arguments: Sequence[_Token], schema: RecordSchema[Any]
) -> Accessor:
    if len(arguments) != 1 or arguments[0].kind not in {"field", "dot"}:
        raise TemplateError(text, head.offset, "json takes one argument: . or a field")
    (argument,) = arguments
    if argument.kind == "dot":
        values = tuple(schema.values.items())
        return lambda record: go_json({name: value_of(record) for name, value_of in values})
    field, key = _resolve(text, argument, schema)
    if key is None:
        value_of = schema.values[field]
        return lambda record: go_json(value_of(record))
    mapping_of = schema.maps[field]
    # A missing entry is Go's invalid value, which json receives as nil.
    return lambda record: go_json(mapping_of(record).get(key))


def _index_accessor(
    text: str, head: _Token, arguments: Sequence[_Token], schema: RecordSchema[Any]
) -> Accessor:
    usage = 'index takes a map and a quoted key: {{index .Map "some/key"}}'
    if len(arguments) != 2:
        raise TemplateError(text, head.offset, usage)
    mapping_token, key_token = arguments
    field, key = (
        _resolve(text, mapping_token, schema) if mapping_token.kind == "field" else ("", None)
    )
    if field not in schema.maps or key is not None:
        raise TemplateError(text, mapping_token.offset, usage)
    if key_token.kind not in {"string", "raw_string"}:
        raise TemplateError(text, key_token.offset, usage)
    mapping_of = schema.maps[field]
    index_key = _unquote(text, key_token)
    # Go's index gives the zero value for a missing key, not <no value>.
    return lambda record: mapping_of(record).get(index_key, "")


def _unquote(text: str, token: _Token) -> str:
    """A Go string literal's value (strconv.Unquote)."""
    body = token.text[1:-1]
    if token.kind == "raw_string":
        return body.replace("\r", "")  # Go drops carriage returns from raw strings
    # \x and octal escapes are bytes in Go, so the value is built as UTF-8 bytes.
    value = bytearray()
    position = 0
    while position < len(body):
        part = _STRING_PART.match(body, position)
        if part is None or (part_bytes := _string_part_bytes(part)) is None:
            raise TemplateError(text, token.offset + 1 + position, "invalid escape in string")
        value += part_bytes
        position = part.end()
    return value.decode(errors="replace")


def _string_part_bytes(part: re.Match[str]) -> bytes | None:
    """The bytes one piece of a string's body stands for; None for an invalid escape."""
    if part["simple"]:
        return _SIMPLE_ESCAPES[part["simple"]]
    if part["hex"]:
        return bytes([int(part["hex"], 16)])
    if part["octal"]:
        code = int(part["octal"], 8)
        return bytes([code]) if code <= 0xFF else None
    if rune := part["rune4"] or part["rune8"]:
        code = int(rune, 16)
        return None if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF else chr(code).encode()
    return part[0].encode()


def go_json(value: object) -> str:
    """`value` as the json function of docker/cli's templates writes it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Go escapes these two even with HTML escaping off; Python never does.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
