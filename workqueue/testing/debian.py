"""Debian's rabbitmq-server packages, where their defaults differ from upstream's.

The throwaway brokers run Debian's packages (bookworm's 3.10.8 on this machine, trixie's 4.0.5 and
forky's 4.3.6 in images). A Debian patch that changes a default a guarantee depends on is listed
here with the configuration that restores upstream's default; a broker runs with it unless it is
asked for Debian's defaults (``defaults="debian"``, or WORKQUEUE_RABBITMQ_DEFAULTS=debian). Each
entry was read in the package's changelog.Debian and checked against upstream's source.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
import subprocess

#: How a broker's defaults are chosen: "upstream" (Debian's patches that change a default a
#: guarantee depends on are undone by configuration) or "debian" (the package as it ships).
DEFAULTS = ("upstream", "debian")
#: The image label scripts/rabbitmq-image.sh writes: the image's rabbitmq-server package version.
PACKAGE_LABEL = "workqueue.rabbitmq-package"


@dataclasses.dataclass(frozen=True)
class Patch:
    """A Debian patch that changes one of upstream's defaults, from package ``since`` on."""
    name: str
    since: tuple[int, int, int, int]        # upstream major, minor, patch; Debian revision
    changelog: str                          # the changelog.Debian entry that adds it
    upstream: str                           # upstream's default, where its source says so
    conf: str                               # the rabbitmq.conf line that restores upstream's


PATCHES = (
    Patch(name="do-not-deprecate-transient_nonexcl_queues.patch", since=(4, 3, 0, 3),
          changelog="rabbitmq-server (4.3.0-3): Add do-not-deprecate-transient_nonexcl_queues.patch "
                    "(Closes: #1138887)",
          upstream="deprecated feature transient_nonexcl_queues: denied_by_default from 4.3.0 "
                   "(deps/rabbit/src/rabbit_amqqueue.erl, v4.3.0 to v4.3.5); Debian's package lists it "
                   "permitted_by_default",
          conf="deprecated_features.permit.transient_nonexcl_queues = false"),
)


def parse(version: str | None) -> tuple[int, int, int, int] | None:
    """A Debian package version ("4.3.6-1", "3.10.8-1.1+deb12u1") as (major, minor, patch,
    revision); None when it is not one."""
    found = re.match(r"(?:\d+:)?(\d+)\.(\d+)\.(\d+)-(\d+)", version or "")
    return tuple(int(part) for part in found.groups()) if found else None  # type: ignore[return-value]


def patches(package: str | None) -> list[Patch]:
    """The patches of PATCHES that Debian package version ``package`` carries."""
    parsed = parse(package)
    if parsed is None:
        return []
    return [p for p in PATCHES if parsed >= p.since]


def defaults_from_env(defaults: str | None = None) -> str:
    """``defaults``, else WORKQUEUE_RABBITMQ_DEFAULTS, else "upstream"; a ValueError names the
    choices."""
    chosen = defaults or os.environ.get("WORKQUEUE_RABBITMQ_DEFAULTS") or "upstream"
    if chosen not in DEFAULTS:
        raise ValueError(f"RabbitMQ defaults must be one of {', '.join(DEFAULTS)}, not {chosen!r}")
    return chosen


def restoring_conf(package: str | None, defaults: str) -> str:
    """The rabbitmq.conf lines that give Debian package ``package`` upstream's defaults (none
    with defaults "debian", or for a package that is not Debian's)."""
    if defaults == "debian":
        return ""
    return "".join(f"{p.conf}\n" for p in patches(package))


@functools.cache
def installed_package() -> str | None:
    """The version of this machine's rabbitmq-server package (dpkg), or None; asked once per
    process (every node of a cluster runs the same package)."""
    if shutil.which("dpkg-query") is None:
        return None
    try:
        run = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return run.stdout.strip() or None if run.returncode == 0 else None


#: What each packaged upstream version lacks of its own line's later releases that a guarantee
#: stated here depends on (read in upstream's release notes, release-notes/<version>.md).
LACKS = {
    "3.10.8": "3.10.9 to 3.10.25: none of their core fixes touches a guarantee stated here "
              "(quorum replicas' metrics #6282, WAL growth #6447, single active consumer #6513)",
    "4.0.5": "4.0.6 to 4.0.9: quorum queue followers not told of unapplied commands after a leader change "
             "(#13095, 4.0.6) and rare replication safety issues of quorum queues (#13530, 4.0.8), both "
             "under the cluster scenarios' leader faults",
    "4.3.6": "nothing known: the newest release of its line when it was read",
}


def describe(package: str | None, defaults: str) -> dict[str, object]:
    """What a run's page says of its broker's package: its version, the Debian patches undone
    (upstream's defaults) or kept (Debian's), and what its upstream line has that it lacks."""
    parsed = parse(package)
    upstream = ".".join(str(p) for p in parsed[:3]) if parsed else None
    found = patches(package)
    return {"package": package, "defaults": defaults,
            "patches": [{"name": p.name, "changelog": p.changelog, "upstream": p.upstream,
                         "undone": defaults == "upstream", "conf": p.conf} for p in found],
            "lacks": LACKS.get(upstream or "", None)}
