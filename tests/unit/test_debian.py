"""Debian's rabbitmq-server packages against upstream's defaults (workqueue/testing/debian.py)."""

import pytest

from workqueue.testing import debian

RESTORE = "deprecated_features.permit.transient_nonexcl_queues = false\n"


@pytest.mark.parametrize("package, conf", [
    ("4.3.6-1", RESTORE),                       # forky: the patch since 4.3.0-3
    ("4.3.0-3", RESTORE),
    ("4.3.0-2", ""),                            # before the patch
    ("4.0.5-6+deb13u2", ""),                    # trixie
    ("3.10.8-1.1+deb12u1", ""),                 # bookworm
    (None, ""),                                 # not Debian's (the official images, a URL)
    ("not a version", ""),
])
def test_a_patched_package_gets_upstreams_default_back(package, conf):
    assert debian.restoring_conf(package, "upstream") == conf
    assert debian.restoring_conf(package, "debian") == ""


def test_the_defaults_are_upstreams_unless_debians_are_asked_for(monkeypatch):
    monkeypatch.delenv("WORKQUEUE_RABBITMQ_DEFAULTS", raising=False)
    assert debian.defaults_from_env() == "upstream"
    monkeypatch.setenv("WORKQUEUE_RABBITMQ_DEFAULTS", "debian")
    assert debian.defaults_from_env() == "debian"
    assert debian.defaults_from_env("upstream") == "upstream"
    with pytest.raises(ValueError, match="one of upstream, debian, not 'ubuntu'"):
        debian.defaults_from_env("ubuntu")


def test_the_page_is_told_the_package_the_patch_and_what_its_line_has_since():
    said = debian.describe("4.3.6-1", "upstream")
    assert said["package"] == "4.3.6-1" and said["defaults"] == "upstream"
    assert [(p["name"], p["undone"]) for p in said["patches"]] == [
        ("do-not-deprecate-transient_nonexcl_queues.patch", True)]
    assert "#13530" in debian.describe("4.0.5-6+deb13u2", "upstream")["lacks"]
    assert debian.describe("4.0.5-6+deb13u2", "upstream")["patches"] == []
