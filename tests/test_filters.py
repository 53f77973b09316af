"""`parse_filters` and `EventFilter.matches`: every key, how keys combine, every error.

The rules are Docker's (`docker events --filter`) where Docker has one, and the
module docstring of `evactors.events.filters` where it does not.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evactors.events.filters import (
    EventFilter,
    FilterError,
    parse_filters,
)
from evactors.events.model import EventType, SystemEvent
from evactors.references import normalized_image

# Hypothesis would otherwise write a .hypothesis/ directory into the shared checkout.
quick = settings(database=None, max_examples=200, deadline=None)

CONTAINER_ID = "3f4e5d6c7b8a" + "0" * 52
BUSYBOX = "docker.io/library/busybox:latest"
DIGEST = "sha256:" + "ab" * 32

START = SystemEvent(
    sequence=1,
    timestamp=1_796_399_590_549_196_660,
    namespace="default",
    topic="/tasks/start",
    status="start",
    type=EventType.TASK_EVENT,
    container_id=CONTAINER_ID,
    event_data=f'{{"container_id":"{CONTAINER_ID}","pid":5060}}',
    metadata={"name": "web", "image": BUSYBOX, "pid": "5060"},
    labels={"nerdctl/name": "web", "app": "shop", "tier": ""},
)


def event(**changes: Any) -> SystemEvent:
    return attrs.evolve(START, **changes)


def matches(filters: list[str], subject: SystemEvent = START) -> bool:
    return parse_filters(filters).matches(subject)


# --- No filters -----------------------------------------------------------------------


def test_no_filters_match_everything():
    assert parse_filters([]) == EventFilter()
    assert matches([])
    assert matches([], event(container_id="", metadata={}, labels={}, type=EventType.IMAGE_EVENT))


# --- event / status ----------------------------------------------------------------


@pytest.mark.parametrize("key", ["event", "status"])
@pytest.mark.parametrize("value", ["start", "START", "Start"])
def test_event_compares_the_status_case_insensitively(key, value):
    assert matches([f"{key}={value}"])
    assert not matches([f"{key}={value}"], event(status="die"))


def test_event_and_status_are_one_or_group():
    filters = ["event=start", "status=die"]
    assert matches(filters)
    assert matches(filters, event(status="die"))
    assert not matches(filters, event(status="create"))


def test_a_status_word_is_not_a_prefix():
    assert not matches(["event=sta"])


# --- container -------------------------------------------------------------------


@pytest.mark.parametrize("value", [CONTAINER_ID, CONTAINER_ID[:12], CONTAINER_ID[:1], "web"])
def test_container_matches_id_prefix_or_name(value):
    assert matches([f"container={value}"])


@pytest.mark.parametrize("value", ["we", "Web", "web2", CONTAINER_ID[1:13], CONTAINER_ID + "0"])
def test_container_name_is_exact_and_id_is_a_prefix(value):
    assert not matches([f"container={value}"])


def test_event_without_container_never_matches_container_filter():
    imageless = event(container_id="", type=EventType.IMAGE_EVENT)  # name "web" still set
    assert not matches(["container=web"], imageless)
    assert not matches([f"container={CONTAINER_ID[:4]}"], imageless)


# --- type ------------------------------------------------------------------------

OTHER_TYPES = [t for t in EventType if t not in {EventType.CONTAINER_EVENT, EventType.TASK_EVENT}]


@pytest.mark.parametrize("value", ["container", "CONTAINER", "Container"])
def test_type_container_matches_container_and_task_events(value):
    matched = {t for t in EventType if matches([f"type={value}"], event(type=t))}
    assert matched == {EventType.CONTAINER_EVENT, EventType.TASK_EVENT}


@pytest.mark.parametrize("event_type", [EventType.TASK_EVENT, *OTHER_TYPES])
def test_each_other_type_word_matches_its_one_type(event_type):
    matched = {t for t in EventType if matches([f"type={event_type.word}"], event(type=t))}
    assert matched == {event_type}


@pytest.mark.parametrize("event_type", list(EventType))
@pytest.mark.parametrize("spell", [str.upper, str.lower])
def test_type_enum_names_match_exactly_their_type(event_type, spell):
    value = spell(event_type.name)
    matched = {t for t in EventType if matches([f"type={value}"], event(type=t))}
    assert matched == {event_type}


def test_type_words_cover_every_event_type():
    assert {t.word for t in EventType} == {
        "unknown", "container", "image", "network", "volume",
        "task", "snapshot", "namespace", "content", "system",
    }  # fmt: skip


# --- namespace -------------------------------------------------------------------


def test_namespace_is_exact():
    assert matches(["namespace=default"])
    for other in ["Default", "default2", "defaul", "k8s.io"]:
        assert not matches(["namespace=default"], event(namespace=other))


# --- topic -----------------------------------------------------------------------


def test_topic_is_exact_without_trailing_slash():
    assert matches(["topic=/tasks/start"])
    assert not matches(["topic=/tasks/start"], event(topic="/tasks/started"))
    assert not matches(["topic=/tasks"])
    assert not matches(["topic=/tasks/sta"])


def test_topic_with_trailing_slash_is_a_prefix():
    assert matches(["topic=/tasks/"])
    assert matches(["topic=/tasks/"], event(topic="/tasks/exit"))
    assert matches(["topic=/"], event(topic="/images/create"))
    assert not matches(["topic=/tasks/"], event(topic="/containers/create"))
    assert not matches(["topic=/task/"])


def test_topic_exact_and_prefix_values_are_one_or_group():
    filters = ["topic=/containers/", "topic=/tasks/exit"]
    assert matches(filters, event(topic="/containers/delete"))
    assert matches(filters, event(topic="/tasks/exit"))
    assert not matches(filters)  # /tasks/start


# --- label -----------------------------------------------------------------------


def test_label_key_alone_matches_any_value():
    assert matches(["label=app"])
    assert matches(["label=tier"])  # present with an empty value
    assert matches(["label=nerdctl/name"])
    assert not matches(["label=App"])
    assert not matches(["label=missing"])


def test_label_key_and_value_match_exactly():
    assert matches(["label=app=shop"])
    assert matches(["label=nerdctl/name=web"])
    assert not matches(["label=app=Shop"])
    assert not matches(["label=app=sho"])
    assert not matches(["label=missing=shop"])


def test_label_with_empty_value_means_an_empty_label():
    assert matches(["label=tier="])
    assert not matches(["label=app="])


def test_label_value_may_contain_equals_signs():
    assert matches(["label=query=a=b"], event(labels={"query": "a=b"}))
    assert not matches(["label=query=a"], event(labels={"query": "a=b"}))


def test_event_without_labels_never_matches_label_filter():
    assert not matches(["label=app"], event(labels={}))


# --- image -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "busybox",
        "busybox:latest",
        "library/busybox",
        "library/busybox:latest",
        "docker.io/busybox",
        "docker.io/library/busybox",
        "docker.io/library/busybox:latest",
        "index.docker.io/library/busybox",
    ],
)
def test_image_values_are_normalized_as_docker_references(value):
    assert matches([f"image={value}"])


@pytest.mark.parametrize("image", ["busybox", "library/busybox:latest", BUSYBOX])
def test_event_image_is_normalized_too(image):
    assert matches(["image=busybox"], event(metadata={"image": image}))


@pytest.mark.parametrize(
    "value",
    ["busybox:1.36", "alpine", "ghcr.io/library/busybox", "other/busybox", f"busybox@{DIGEST}"],
)
def test_image_is_the_whole_reference(value):
    assert not matches([f"image={value}"])


def test_event_without_image_never_matches_image_filter():
    assert not matches(["image=busybox"], event(metadata={}))


@pytest.mark.parametrize(
    ("reference", "normalized"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("user/app", "docker.io/user/app:latest"),
        ("docker.io/user/app:v1", "docker.io/user/app:v1"),
        ("index.docker.io/user/app", "docker.io/user/app:latest"),
        ("ghcr.io/owner/app", "ghcr.io/owner/app:latest"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:v2", "localhost:5000/app:v2"),
        ("registry.example.com:443/a/b/c", "registry.example.com:443/a/b/c:latest"),
        ("[::1]:5000/app", "[::1]:5000/app:latest"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
        (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}"),
        ("my_app-2.x", "docker.io/library/my_app-2.x:latest"),
        # A capitalized first component is a registry host, as in distribution/reference.
        ("Registry/app", "Registry/app:latest"),
    ],
)
def testnormalized_image(reference, normalized):
    assert normalized_image(reference) == normalized


@pytest.mark.parametrize(
    "reference",
    [
        "BusyBox",  # repository names are lower-case
        "docker.io/Library/busybox",
        "busybox:",  # empty tag
        "busybox:bad/tag",
        "busybox@sha256:short",
        "-leading-dash",
        "a" * 64,  # an image id, not a name
        "x/" + "a" * 260,  # a name longer than 255 characters
        "",
    ],
)
def test_unparsable_image_is_kept_verbatim(reference):
    assert normalized_image(reference) == reference


def test_unparsable_image_value_is_compared_verbatim():
    assert matches(["image=BusyBox"], event(metadata={"image": "BusyBox"}))
    assert not matches(["image=BusyBox"])


# --- Combining keys --------------------------------------------------------------


def test_same_key_is_or():
    assert matches(["container=db", "container=web"])
    assert matches(["namespace=k8s.io", "namespace=default"])
    assert not matches(["container=db", "container=cache"])


def test_different_keys_are_and():
    assert matches(["type=container", "event=start", "namespace=default", "label=app=shop"])
    assert not matches(["type=container", "event=die"])
    assert not matches(["type=image", "event=start"])
    assert not matches(["event=start", "namespace=k8s.io"])


def test_or_groups_combine_with_and():
    filters = ["event=start", "event=die", "container=web", "container=db"]
    assert matches(filters)
    assert matches(filters, event(status="die"))
    assert not matches(filters, event(status="create"))
    assert not matches(filters, event(metadata={"name": "cache"}, container_id="ffff"))


def test_repeated_value_is_harmless():
    assert parse_filters(["event=start", "event=start"]) == parse_filters(["event=start"])


# --- Errors ----------------------------------------------------------------------

KEY_LIST = "event, status, container, type, namespace, topic, label or image"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo", 'invalid filter "foo": want key=value'),
        ("", 'invalid filter "": want key=value'),
        ("=start", 'invalid filter "=start": empty key'),
        ("foo=bar", f'invalid filter "foo=bar": unknown key "foo" (use {KEY_LIST})'),
        ("Event=start", f'invalid filter "Event=start": unknown key "Event" (use {KEY_LIST})'),
        ("event=", 'invalid filter "event=": empty value'),
        ("status=", 'invalid filter "status=": empty value'),
        ("container=", 'invalid filter "container=": empty value'),
        ("label=", 'invalid filter "label=": empty value'),
        ("label==shop", 'invalid filter "label==shop": empty label key'),
        ("label==", 'invalid filter "label==": empty label key'),
    ],
)
def test_error_names_the_filter(text, message):
    with pytest.raises(FilterError) as caught:
        parse_filters([text])
    assert str(caught.value) == message
    assert caught.value.filter == text


@pytest.mark.parametrize("value", ["daemon", "plugin", "tasks", "container_events", "EVENT"])
def test_unknown_type_lists_the_choices(value):
    with pytest.raises(FilterError) as caught:
        parse_filters([f"type={value}"])
    assert str(caught.value).startswith(f'invalid filter "type={value}": unknown type "{value}" (')
    assert "container, image" in caught.value.reason
    assert "CONTAINER_EVENT" in caught.value.reason


def test_first_bad_filter_is_reported():
    with pytest.raises(FilterError) as caught:
        parse_filters(["event=start", "type=bogus", "nope=1"])
    assert caught.value.filter == "type=bogus"


def test_filter_error_is_a_value_error():
    with pytest.raises(ValueError, match="invalid filter"):
        parse_filters(["x"])


# --- Properties ------------------------------------------------------------------

FILTER_POOL = [
    "event=start",
    "status=die",
    "event=CREATE",
    "type=container",
    "type=task",
    "type=IMAGE_EVENT",
    "namespace=default",
    "namespace=k8s.io",
    "topic=/tasks/",
    "topic=/containers/create",
    f"container={CONTAINER_ID[:6]}",
    "container=web",
    "container=db",
    "label=app",
    "label=app=shop",
    "label=tier=",
    "image=busybox",
    "image=alpine:3",
]

events = st.builds(
    SystemEvent,
    sequence=st.just(1),
    timestamp=st.just(0),
    namespace=st.sampled_from(["default", "k8s.io"]),
    topic=st.sampled_from(["/tasks/start", "/tasks/exit", "/containers/create", "/images/delete"]),
    status=st.sampled_from(["start", "die", "create", "delete"]),
    type=st.sampled_from(list(EventType)),
    container_id=st.sampled_from(["", CONTAINER_ID, "ffff0000"]),
    event_data=st.just("{}"),
    metadata=st.fixed_dictionaries(
        {}, optional={"name": st.sampled_from(["web", "db"]), "image": st.sampled_from(
            ["busybox", BUSYBOX, "docker.io/library/alpine:3", "BusyBox"]
        )},
    ),
    labels=st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["", "shop"])),
)  # fmt: skip
filter_lists = st.lists(st.sampled_from(FILTER_POOL), max_size=6)


@quick
@given(events)
def test_empty_filter_list_matches_every_event(subject):
    assert parse_filters([]).matches(subject)


@quick
@given(filter_lists, st.data(), events)
def test_filters_are_order_independent(filters, data, subject):
    shuffled = data.draw(st.permutations(filters))
    assert parse_filters(shuffled) == parse_filters(filters)
    assert parse_filters(shuffled).matches(subject) == parse_filters(filters).matches(subject)


@quick
@given(filter_lists, st.sampled_from(FILTER_POOL), events)
def test_a_new_key_only_narrows(filters, extra, subject):
    key = extra.partition("=")[0]
    aliases = {key, *({"event", "status"} if key in {"event", "status"} else ())}
    if any(f.partition("=")[0] in aliases for f in filters):
        return  # the same key would widen its OR group instead
    if parse_filters([*filters, extra]).matches(subject):
        assert parse_filters(filters).matches(subject)
        assert parse_filters([extra]).matches(subject)
