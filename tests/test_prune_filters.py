"""Prune's filters as `docker system prune --filter` takes them, and how `GetSystemInfo`
counts containers by their tasks' states: pure functions, no containerd.

Docker's semantics (daemon/prune.go, `matchLabels`): every `label=` condition must hold;
an object is spared when every `label!=` condition holds; at most one `until`.
"""

from __future__ import annotations

import pytest

from evactors.containerd import Task, TaskStatus
from evactors.system.info import ContainerCounts, count_containers
from evactors.system.prune import PruneFilter, PruneFilterError, parse_prune_filters
from evactors.timespec import NS_PER_SECOND

NOW = 1_796_399_590_549_196_660  # 2026-12-04T15:53:10.549196660Z
HOUR = 3600 * NS_PER_SECOND


# -- parse_prune_filters ------------------------------------------------------------


def test_no_filters_choose_everything():
    assert parse_prune_filters([], now_ns=NOW) == PruneFilter()
    assert PruneFilter().matches(0, {})
    assert PruneFilter().matches(NOW, {"a": "b"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("until=2026-12-04T15:53:10Z", 1_796_399_590 * NS_PER_SECOND),
        ("until=2026-12-04T16:53:10.5+01:00", 1_796_399_590_500_000_000),
        ("until=1796399590", 1_796_399_590 * NS_PER_SECOND),
        ("until=1796399590.000000001", 1_796_399_590 * NS_PER_SECOND + 1),
        ("until=1h", NOW - HOUR),
        ("until=1h30m", NOW - HOUR - HOUR // 2),
        ("until=0s", NOW),
    ],
)
def test_until_takes_a_time_unix_seconds_or_a_duration_ago(text, expected):
    assert parse_prune_filters([text], now_ns=NOW) == PruneFilter(created_before=expected)


def test_label_conditions_keep_their_key_value_and_order():
    parsed = parse_prune_filters(
        [
            "label=tier",
            "label=tier=front",
            "label!=keep",
            "label=a=b=c",
            "label!=env=prod",
            "until=10m",
        ],
        now_ns=NOW,
    )
    assert parsed == PruneFilter(
        created_before=NOW - 600 * NS_PER_SECOND,
        labels=(("tier", None), ("tier", "front"), ("a", "b=c")),
        not_labels=(("keep", None), ("env", "prod")),
    )


def test_an_empty_label_value_means_the_value_is_empty_not_any_value():
    parsed = parse_prune_filters(["label=k="], now_ns=NOW)
    assert parsed.labels == (("k", ""),)
    assert parsed.matches(0, {"k": ""})
    assert not parsed.matches(0, {"k": "v"})


BAD_FILTERS = {
    "unknown key": (["colour=red"], "colour=red", "unknown key"),
    "no equals sign": (["label"], "label", "key=value"),
    "label! without =": (["label!"], "label!", "key=value"),
    "empty": ([""], "", "key=value"),
    "empty key": (["=x"], "=x", "unknown key"),
    "keys are case-sensitive": (["Label=x"], "Label=x", "unknown key"),
    "empty label": (["label="], "label=", "empty"),
    "empty not-label": (["label!="], "label!=", "empty"),
    "empty until": (["until="], "until=", "empty"),
    "unreadable time": (["until=yesterday-ish"], "until=yesterday-ish", "yesterday-ish"),
    "impossible date": (["until=2026-02-30"], "until=2026-02-30", "day 30"),
    "negative duration": (["until=-1h"], "until=-1h", "negative"),
    "two untils": (["until=1h", "until=2h"], "until=2h", "only one until"),
    "a bad one after good ones": (["label=a", "until=1h", "nope=1"], "nope=1", "unknown key"),
    "docker's event keys are not prune's": (["container=x"], "container=x", "unknown key"),
}


@pytest.mark.parametrize(
    ("filters", "named", "reason"), BAD_FILTERS.values(), ids=BAD_FILTERS.keys()
)
def test_a_bad_filter_is_rejected_naming_it(filters, named, reason):
    with pytest.raises(PruneFilterError) as caught:
        parse_prune_filters(filters, now_ns=NOW)
    assert caught.value.filter == named
    assert f'"{named}"' in str(caught.value)
    assert reason in str(caught.value)
    assert isinstance(caught.value, ValueError)


# -- PruneFilter.matches ------------------------------------------------------------


def test_until_chooses_what_was_created_before_it():
    chosen = PruneFilter(created_before=NOW)
    assert chosen.matches(NOW, {})  # Docker skips only what was created after `until`
    assert chosen.matches(NOW - 1, {})
    assert chosen.matches(0, {})
    assert not chosen.matches(NOW + 1, {})
    assert not chosen.matches(NOW + HOUR, {})


def test_every_label_condition_must_hold():
    chosen = parse_prune_filters(["label=tier", "label=env=prod"], now_ns=NOW)
    assert chosen.matches(0, {"tier": "x", "env": "prod"})
    assert chosen.matches(0, {"tier": "", "env": "prod", "other": "y"})
    assert not chosen.matches(0, {"tier": "x", "env": "dev"})
    assert not chosen.matches(0, {"tier": "x"})
    assert not chosen.matches(0, {"env": "prod"})
    assert not chosen.matches(0, {})
    # A value is compared whole: no prefix, no case folding.
    assert not parse_prune_filters(["label=env=pro"], now_ns=NOW).matches(0, {"env": "prod"})
    assert not parse_prune_filters(["label=env=PROD"], now_ns=NOW).matches(0, {"env": "prod"})
    assert not parse_prune_filters(["label=Env"], now_ns=NOW).matches(0, {"env": "prod"})


def test_an_object_is_spared_when_every_not_label_condition_holds():
    spare_kept = parse_prune_filters(["label!=keep"], now_ns=NOW)
    assert not spare_kept.matches(0, {"keep": ""})
    assert not spare_kept.matches(0, {"keep": "no"})
    assert spare_kept.matches(0, {"other": "x"})
    assert spare_kept.matches(0, {})

    spare_prod = parse_prune_filters(["label!=env=prod"], now_ns=NOW)
    assert not spare_prod.matches(0, {"env": "prod"})
    assert spare_prod.matches(0, {"env": "dev"})
    assert spare_prod.matches(0, {})

    # Docker: spared only when *all* label! conditions match (MatchKVList).
    spare_both = parse_prune_filters(["label!=keep", "label!=env=prod"], now_ns=NOW)
    assert not spare_both.matches(0, {"keep": "1", "env": "prod"})
    assert spare_both.matches(0, {"keep": "1"})
    assert spare_both.matches(0, {"env": "prod"})
    assert spare_both.matches(0, {"keep": "1", "env": "dev"})


def test_until_label_and_not_label_combine():
    chosen = parse_prune_filters(
        ["until=2026-12-04T15:53:10Z", "label=tier", "label!=keep"], now_ns=NOW
    )
    before = 1_796_399_590 * NS_PER_SECOND - 1
    after = before + 2
    assert chosen.matches(before, {"tier": "front"})
    assert not chosen.matches(after, {"tier": "front"})
    assert not chosen.matches(before, {"tier": "front", "keep": ""})
    assert not chosen.matches(before, {})


# -- count_containers ---------------------------------------------------------------


def task(container_id: str, status: TaskStatus) -> Task:
    return Task(container_id=container_id, pid=42, status=status, exit_status=0, exited_at=0)


def test_containers_are_counted_by_their_tasks_state():
    tasks = {
        cid: task(cid, status)
        for cid, status in (
            ("running", TaskStatus.RUNNING),
            ("paused", TaskStatus.PAUSED),
            ("pausing", TaskStatus.PAUSING),
            ("created", TaskStatus.CREATED),
            ("stopped", TaskStatus.STOPPED),
            ("unknown", TaskStatus.UNKNOWN),
            # A task whose container is not listed is not counted.
            ("elsewhere", TaskStatus.RUNNING),
        )
    }
    ids = ["running", "paused", "pausing", "created", "stopped", "unknown", "no-task"]
    counts = count_containers(ids, tasks)
    assert counts == ContainerCounts(total=7, running=1, paused=2, stopped=4)
    assert counts.running + counts.paused + counts.stopped == counts.total


def test_no_containers_count_zero():
    assert count_containers([], {}) == ContainerCounts(0, 0, 0, 0)
    assert count_containers([], {"x": task("x", TaskStatus.RUNNING)}) == ContainerCounts()


def test_containers_without_tasks_are_stopped():
    assert count_containers(iter(["a", "b"]), {}) == ContainerCounts(2, 0, 0, 2)
