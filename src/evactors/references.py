"""Docker image references: how Docker and nerdctl read an image name.

The grammar of github.com/distribution/reference (its regexp.go), and its normalization
(`ParseNormalizedNamed` + `TagNameOnly`): `busybox` is `docker.io/library/busybox:latest`.
Used by the `image` event filter and by prune (which images are dangling).
"""

from __future__ import annotations

import functools
import re
from typing import Final

_DEFAULT_DOMAIN: Final = "docker.io"
_LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
_OFFICIAL_REPOSITORY_PREFIX: Final = "library/"
_DEFAULT_TAG: Final = "latest"
_NAME_TOTAL_LENGTH_MAX: Final = 255

# The reference grammar of github.com/distribution/reference (regexp.go), as Docker
# parses image names. re.ASCII because Go's \w is ASCII-only.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN_AND_PORT = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"\w[\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE: Final = re.compile(
    rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII
)
_BARE_DIGEST: Final = re.compile(rf"{_DIGEST}", re.ASCII)
# Docker refuses a bare 64-hex string as a name: it is an image id, not a repository.
_IMAGE_ID: Final = re.compile(r"[a-f0-9]{64}")


# Events name few distinct images, and each is normalized on every match: remember them.
@functools.lru_cache(maxsize=1024)
def normalized_image(reference: str) -> str:
    """`reference` normalized as Docker does, or unchanged if it does not parse.

    `busybox`, `library/busybox` and `docker.io/library/busybox` all become
    `docker.io/library/busybox:latest` (`reference.ParseNormalizedNamed` followed by
    `reference.TagNameOnly` in github.com/distribution/reference).
    """
    if _IMAGE_ID.fullmatch(reference):
        return reference
    # splitDockerDomain: the first component is a registry only if it looks like a host.
    domain, slash, remainder = reference.partition("/")
    if not slash or (
        not any(character in domain for character in ".:")
        and domain != "localhost"
        and domain.lower() == domain
    ):
        domain, remainder = _DEFAULT_DOMAIN, reference
    if domain == _LEGACY_DEFAULT_DOMAIN:
        domain = _DEFAULT_DOMAIN
    if domain == _DEFAULT_DOMAIN and "/" not in remainder:
        remainder = _OFFICIAL_REPOSITORY_PREFIX + remainder
    repository = remainder.partition(":")[0]
    if repository.lower() != repository:
        return reference
    match = _REFERENCE.fullmatch(f"{domain}/{remainder}")
    if match is None or len(match["name"]) > _NAME_TOTAL_LENGTH_MAX:
        return reference
    name, tag, digest = match["name"], match["tag"], match["digest"]
    if tag is None and digest is None:
        tag = _DEFAULT_TAG
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def is_dangling(name: str) -> bool:
    """Whether an image name is dangling as nerdctl counts it for containerd.

    Dangling: no tag once normalized (digest-only `repo@sha256:...`), a bare digest
    (`sha256:...`, which Go would misread as repository `sha256` with a tag), or no
    reference at all (an unparsable name, a bare image id). A name with neither tag nor
    digest is not dangling: it means `:latest`.
    """
    if _BARE_DIGEST.fullmatch(name):
        return True
    match = _REFERENCE.fullmatch(normalized_image(name))
    return match is None or match["tag"] is None
