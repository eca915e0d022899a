"""Opt-in scheduling of broker tests under pytest-xdist, for a project's own conftest.py.

The plugin leaves a project's test order alone; a project whose tests share the costly 3-node
cluster can ask for this from its ``pytest_collection_modifyitems`` (this project's conftest.py
does), run before pytest-xdist's own hook (``tryfirst``), with ``--dist loadgroup``::

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(config, items):
        scheduling.keep_cluster_tests_together(config, items)
        scheduling.longest_first(config, items)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:          # pytest is imported by the hooks that call these, never by this module
    import pytest


def on_cluster(item: pytest.Item) -> bool:
    """Whether a test uses the session's cluster. pytest-bdd asks for its steps' fixtures as
    they run, so a scenario is known by its ``cluster`` marker; a plain test by its fixture."""
    return bool(item.get_closest_marker("cluster")) or "cluster" in getattr(item, "fixturenames", ())


def keep_cluster_tests_together(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the tests of one module that use the cluster share one test process
    (an ``xdist_group`` per module): each process boots its own broker, and the cluster once."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    import pytest
    for item in items:
        if on_cluster(item):
            module = getattr(getattr(item, "module", None), "__name__", "")
            item.add_marker(pytest.mark.xdist_group(f"workqueue-cluster:{module}"))


def longest_first(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a pytest-xdist test process: the longest tests first (those on the cluster, then
    those that restart or crash their broker), so that none starts last and runs alone at the
    end. Every process sorts the same way, as xdist requires; it then hands the tests out in
    this order."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: 0 if on_cluster(item) else 1 if item.get_closest_marker("broker_control") else 2)
