"""`compile_template` and `EventTemplate.render`: the Go text/template subset of `--format`.

Expected outputs follow Go: text/template's printing (`map[k:v]` with sorted keys,
`<no value>` for a missing map entry, `index` giving "" instead), its lexer (trim markers
need a space on their inner side, an operand ends only at a space or the delimiter), and
the `json` function of docker/cli's templates package, which nerdctl uses (compact, HTML
escaping off, map keys sorted, time.Time as RFC 3339 with nanoseconds).
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evactors.events.model import EventType, SystemEvent
from evactors.events.template import NO_VALUE, TemplateError, compile_template

# Hypothesis would otherwise write a .hypothesis/ directory into the shared checkout.
quick = settings(database=None, max_examples=200, deadline=None)

PAYLOAD = '{"container_id":"c1","pid":5060}'
START = SystemEvent(
    sequence=7,
    # 2026-12-04 15:53:10.54919666 UTC
    timestamp=1_796_399_590_549_196_660,
    namespace="default",
    topic="/tasks/start",
    status="start",
    type=EventType.TASK_EVENT,
    container_id="c1",
    event_data=PAYLOAD,
    metadata={"name": "web", "pid": "5060", "image": "docker.io/library/busybox:latest"},
    labels={"nerdctl/name": "web", "app": "shop", "z": "last"},
)
GO_TIME = "2026-12-04 15:53:10.54919666 +0000 UTC"
RFC3339 = "2026-12-04T15:53:10.54919666Z"
JSON_KEYS = [
    "Timestamp", "ID", "Namespace", "Topic", "Status", "Action", "Event", "Labels", "Type",
    "Metadata",
]  # fmt: skip


def event(**changes: Any) -> SystemEvent:
    return attrs.evolve(START, **changes)


def render(template: str, subject: SystemEvent = START) -> str:
    return compile_template(template).render(subject)


# --- Fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.Timestamp}}", GO_TIME),
        ("{{.ID}}", "c1"),
        ("{{.Namespace}}", "default"),
        ("{{.Topic}}", "/tasks/start"),
        ("{{.Status}}", "start"),
        ("{{.Action}}", "start"),
        ("{{.Event}}", PAYLOAD),
        ("{{.Labels}}", "map[app:shop nerdctl/name:web z:last]"),
        ("{{.Type}}", "task"),
        ("{{.Metadata}}", "map[image:docker.io/library/busybox:latest name:web pid:5060]"),
    ],
)
def test_every_field(template, expected):
    assert render(template) == expected


@pytest.mark.parametrize("event_type", list(EventType))
def test_type_prints_dockers_word(event_type):
    assert render("{{.Type}}", event(type=event_type)) == event_type.word


def test_event_without_container_has_empty_id():
    assert render("[{{.ID}}]", event(container_id="")) == "[]"


def test_timestamp_trims_trailing_zeros_like_go():
    assert render("{{.Timestamp}}", event(timestamp=1_796_399_590_000_000_000)) == (
        "2026-12-04 15:53:10 +0000 UTC"
    )


def test_whole_record_prints_as_a_go_struct():
    assert render("{{.}}") == (
        f"{{{GO_TIME} c1 default /tasks/start start start {PAYLOAD}"
        " map[app:shop nerdctl/name:web z:last] task"
        " map[image:docker.io/library/busybox:latest name:web pid:5060]}"
    )


# --- Maps ------------------------------------------------------------------------


def test_empty_maps_print_as_go_does():
    assert render("{{.Labels}} {{.Metadata}}", event(labels={}, metadata={})) == "map[] map[]"


def test_map_entry_by_dotted_key():
    assert render("{{.Labels.app}}/{{.Metadata.name}}/{{.Metadata.pid}}") == "shop/web/5060"


def test_missing_dotted_key_prints_no_value():
    assert render("{{.Labels.missing}}|{{.Metadata.exit_code}}") == f"{NO_VALUE}|{NO_VALUE}"
    assert NO_VALUE == "<no value>"


def test_dotted_keys_follow_gos_identifier_rule():
    labels = {"_x": "1", "a1": "2", "ключ": "3"}
    assert render("{{.Labels._x}} {{.Labels.a1}} {{.Labels.ключ}}", event(labels=labels)) == (
        "1 2 3"
    )


def test_index_with_a_slash_key():
    assert render('{{index .Labels "nerdctl/name"}}') == "web"
    assert render('{{index .Metadata "name"}}') == "web"


def test_index_with_raw_string_and_escapes():
    assert render("{{index .Labels `nerdctl/name`}}") == "web"
    assert render(r'{{index .Labels "nerdctl\x2fname"}}') == "web"
    assert render(r'{{index .Labels "nerdctl\057name"}}') == "web"
    assert render(r'{{index .Labels "nerdctl\u002fname"}}') == "web"
    assert render(r'{{index .Labels "a\"b"}}', event(labels={'a"b': "q"})) == "q"


def test_index_of_a_missing_key_is_empty_as_in_go():
    assert render('[{{index .Labels "missing"}}]') == "[]"


def test_a_key_may_contain_the_delimiter():
    assert render('{{index .Labels "a}}b"}}!', event(labels={"a}}b": "x"})) == "x!"


# --- JSON ------------------------------------------------------------------------


def test_json_of_the_record():
    printed = render("{{json .}}")
    assert printed == (
        f'{{"Timestamp":"{RFC3339}","ID":"c1","Namespace":"default",'
        '"Topic":"/tasks/start","Status":"start","Action":"start",'
        '"Event":"{\\"container_id\\":\\"c1\\",\\"pid\\":5060}",'
        '"Labels":{"app":"shop","nerdctl/name":"web","z":"last"},"Type":"task",'
        '"Metadata":{"image":"docker.io/library/busybox:latest","name":"web","pid":"5060"}}'
    )
    parsed = json.loads(printed)
    assert list(parsed) == JSON_KEYS
    assert parsed["Event"] == PAYLOAD
    assert json.loads(parsed["Event"]) == {"container_id": "c1", "pid": 5060}
    assert parsed["Labels"] == START.labels
    assert parsed["Metadata"] == START.metadata


def test_json_of_empty_maps_is_empty_objects():
    parsed = json.loads(render("{{json .}}", event(labels={}, metadata={})))
    assert parsed["Labels"] == {}
    assert parsed["Metadata"] == {}
    assert render("{{json .Labels}}", event(labels={})) == "{}"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{json .Timestamp}}", f'"{RFC3339}"'),
        ("{{json .ID}}", '"c1"'),
        ("{{json .Status}}", '"start"'),
        ("{{json .Type}}", '"task"'),
        ("{{json .Event}}", json.dumps(PAYLOAD, separators=(",", ":"))),
        ("{{json .Labels}}", '{"app":"shop","nerdctl/name":"web","z":"last"}'),
        (
            "{{json .Metadata}}",
            '{"image":"docker.io/library/busybox:latest","name":"web","pid":"5060"}',
        ),
        ("{{json .Metadata.name}}", '"web"'),
        ("{{json .Labels.missing}}", "null"),  # Go passes the missing value to json as nil
    ],
)
def test_json_of_a_field(template, expected):
    assert render(template) == expected


def test_json_keeps_html_characters_but_escapes_line_separators():
    # docker/cli's json function turns HTML escaping off; Go escapes U+2028/U+2029 anyway.
    subject = event(labels={"<a&b>": "x\u2028y\u2029", "tab": "\t"})
    assert render("{{json .Labels}}", subject) == '{"<a&b>":"x\\u2028y\\u2029","tab":"\\t"}'


def test_json_of_the_record_reencodes_html_escapes_of_the_payload():
    # The payload is ctr's JSON text (HTML-escaped by Go); json escapes its backslashes.
    subject = event(event_data='{"id":"\\u003cx\\u003e"}')
    printed = render("{{json .Event}}", subject)
    assert printed == '"{\\"id\\":\\"\\\\u003cx\\\\u003e\\"}"'
    assert json.loads(printed) == subject.event_data


# --- Trim markers and spaces -----------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("a \n\t {{- .ID -}} \r\n b", "ac1b"),
        ("a  {{- .ID}}  b", "ac1  b"),
        ("a  {{.ID -}}  b", "a  c1b"),
        ("a  {{-\t.ID\t-}}  b", "ac1b"),
        ("a\n{{-\n.ID\n-}}\nb", "ac1b"),
        ("{{.ID}}   {{- .ID}}", "c1c1"),
        ("{{.ID -}}   {{.ID}}", "c1c1"),
        ("{{.ID -}} \n {{- .ID}}", "c1c1"),
        ("x {{- .ID -}} y {{- .ID -}} z", "xc1yc1z"),
    ],
)
def test_trim_markers_remove_all_adjacent_whitespace(template, expected):
    assert render(template) == expected


@pytest.mark.parametrize(
    "template",
    ["{{ .ID }}", "{{  .ID\t}}", "{{\n.ID\n}}", "{{ json  .ID }}", '{{ index  .Labels  "app" }}'],
)
def test_spaces_inside_actions(template):
    assert render(template) in {"c1", '"c1"', "shop"}


def test_a_minus_without_a_space_is_no_trim_marker():
    for template in ["{{-.ID}}", "{{.ID-}}", "{{-}}"]:
        with pytest.raises(TemplateError):
            compile_template(template)


# --- Literal text ----------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    ["", "plain text", "{", "}", "{ .ID }", "a } b }}", "{x}{y}", "line\n\tline", "{.ID}"],
)
def test_literal_only_templates(template):
    compiled = compile_template(template)
    assert compiled.render(START) == template
    assert all(isinstance(piece, str) for piece in compiled.pieces)


def test_literal_text_around_actions():
    assert render("id={{.ID}} ns={{.Namespace}}\n") == "id=c1 ns=default\n"
    assert render("{{.ID}}}}") == "c1}}"
    assert render("{ {{.ID}} }") == "{ c1 }"


@quick
@given(st.text().filter(lambda text: "{{" not in text))
def test_text_without_actions_renders_as_itself(text):
    assert render(text) == text


@quick
@given(st.dictionaries(st.text(), st.text()), st.text())
def test_json_of_the_record_always_parses(labels, status):
    parsed = json.loads(render("{{json .}}", event(labels=labels, status=status)))
    assert list(parsed) == JSON_KEYS
    assert parsed["Labels"] == labels
    assert parsed["Status"] == parsed["Action"] == status


# --- The compiled template -------------------------------------------------------


def test_one_template_renders_many_events():
    compiled = compile_template("{{.Status}} {{.ID}}")
    assert compiled.render(START) == "start c1"
    assert compiled.render(event(status="die", container_id="c2")) == "die c2"


def test_templates_compare_by_text():
    assert compile_template("{{.ID}}") == compile_template("{{.ID}}")
    assert compile_template("{{.ID}}") != compile_template("{{ .ID }}")
    assert compile_template("{{.ID}}").text == "{{.ID}}"


# --- Errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "position", "reason"),
    [
        ("{{.ID", "1:1", "unclosed action"),
        ("ok {{json .", "1:4", "unclosed action"),
        ("x{{", "1:2", "unclosed action"),
        ("{{}}", "1:1", "empty action"),
        ("{{ }}", "1:1", "empty action"),
        ("{{- -}}", "1:1", "empty action"),
        ("{{.Nope}}", "1:3", 'unknown field ".Nope" (use .Timestamp, .ID, .Namespace, .Topic,'),
        ("{{.id}}", "1:3", 'unknown field ".id"'),
        ("a\n  {{.Nope}}", "2:5", 'unknown field ".Nope"'),
        ("{{json .Nope}}", "1:8", 'unknown field ".Nope"'),
        ("{{foo .ID}}", "1:3", 'function "foo" not defined (use json or index)'),
        ("{{upper .ID}}", "1:3", '"upper" is not supported'),
        ("{{printf .ID}}", "1:3", '"printf" is not supported'),
        ("{{.ID | json}}", "1:7", "pipelines are not supported"),
        ("{{json (.ID)}}", "1:8", "parentheses are not supported"),
        ("{{if .ID}}x{{end}}", "1:3", '"if" is not supported'),
        ("{{range .Labels}}{{end}}", "1:3", '"range" is not supported'),
        ("{{$x := .ID}}", "1:3", "variables are not supported"),
        ("{{/* note */}}", "1:3", "comments are not supported"),
        ('{{"x"}}', "1:3", "constants are not supported"),
        ("{{3}}", "1:3", "constants are not supported"),
        ("{{-3}}", "1:3", "constants are not supported"),
        ("{{.ID .Topic}}", "1:7", ".ID is not a function: it takes no arguments"),
        ("{{.ID.x}}", "1:6", '.ID is not a map: it has no "x"'),
        ("{{.Labels.a.b}}", "1:12", '.Labels.a is a string: it has no "b"'),
        ("{{json}}", "1:3", "json takes one argument: . or a field"),
        ("{{json . .ID}}", "1:3", "json takes one argument: . or a field"),
        ('{{json "x"}}', "1:3", "json takes one argument: . or a field"),
        ("{{index .Labels}}", "1:3", "index takes a map and a quoted key"),
        ('{{index .ID "x"}}', "1:9", "index takes a map and a quoted key"),
        ('{{index .Labels.app "x"}}', "1:9", "index takes a map and a quoted key"),
        ("{{index .Labels .ID}}", "1:17", "index takes a map and a quoted key"),
        ('{{index .Labels "a" "b"}}', "1:3", "index takes a map and a quoted key"),
        ('{{index .Labels "a}}', "1:17", "unterminated quoted string"),
        ("{{index .Labels `a}}", "1:17", "unterminated raw string"),
        (r'{{index .Labels "\q"}}', "1:18", "invalid escape in string"),
        (r'{{index .Labels "\ud800"}}', "1:18", "invalid escape in string"),
        (r'{{index .Labels "\400"}}', "1:18", "invalid escape in string"),
        ("{{.ID-}}", "1:6", 'bad character "-" after .ID'),
        ("{{json.ID}}", "1:7", 'bad character "." after json'),
        (
            "{{.Labels.nerdctl/name}}",
            "1:18",
            'bad character "/" after .Labels.nerdctl (for such keys, write '
            '{{index .Labels "key"}})',
        ),
        ("{{{.ID}}}", "1:3", 'unexpected "{"'),
    ],
)
def test_errors_name_the_template_the_position_and_the_problem(template, position, reason):
    with pytest.raises(TemplateError) as caught:
        compile_template(template)
    message = str(caught.value)
    assert message.startswith(f"invalid template {json.dumps(template)}: {position}: ")
    assert reason in message
    assert caught.value.template == template
    assert reason in caught.value.reason


def test_error_offset_is_zero_based():
    with pytest.raises(TemplateError) as caught:
        compile_template("abc {{.Nope}}")
    assert caught.value.offset == 6


def test_template_error_is_a_value_error():
    with pytest.raises(ValueError, match="invalid template"):
        compile_template("{{")
