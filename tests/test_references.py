"""Image references: which names are dangling (normalization is tested with filters)."""

from __future__ import annotations

import pytest

from evactors.references import is_dangling

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "name",
    [
        f"docker.io/library/busybox@{DIGEST}",
        f"registry.example:5000/team/app@{DIGEST}",
        DIGEST,
        "ab" * 32,  # a bare image id
        "Not A Reference",
        "Busybox:latest",  # repositories are lower case
        "",
    ],
)
def test_dangling(name):
    assert is_dangling(name)


@pytest.mark.parametrize(
    "name",
    [
        "docker.io/library/busybox:latest",
        "busybox",  # means :latest
        "busybox:1.36",
        f"docker.io/library/busybox:1.36@{DIGEST}",
        "localhost:5000/app:v1",
    ],
)
def test_not_dangling(name):
    assert not is_dangling(name)
