"""The specification's pytest set-up: the steps modules, the harness plugin, known defects.

The throwaway brokers come from workqueue's pytest plugin (workqueue/testing/plugin.py, loaded
through its pytest11 entry point when the package is installed with the test extra, and named
here when it is not): ``--broker=auto|node|container|url``, the ``broker``, ``cluster``,
``vhost`` and ``amqp_url`` fixtures. This project fails the whole run at its start, in one line,
when no broker can be had: it never turns green by skipping.
"""

import importlib.metadata
import pathlib

import pytest
import tomllib

from workqueue.testing import plugin as workqueue_plugin

pytest_plugins = [
    "pytester",
    "steps.broker",
    "steps.queues",
    "steps.tasks",
    "steps.workers",
    "steps.cluster",
]
if not any(ep.value.startswith("workqueue.testing.plugin")
           for ep in importlib.metadata.entry_points(group="pytest11")):
    pytest_plugins.append("workqueue.testing.plugin")       # not installed: a source checkout

#: Known RabbitMQ defects, by id: the scenarios tagged @defect_<id> are strict expected failures
#: on the versions each lists.
DEFECTS = tomllib.loads((pathlib.Path(__file__).parent / "features" / "defects.toml").read_text())


def pytest_configure(config):
    for key, defect in DEFECTS.items():
        config.addinivalue_line("markers", f"defect_{key}: RabbitMQ defect: {defect['title']}")
    if not (config.option.collectonly or config.option.help):
        workqueue_plugin.require_broker(config)


def pytest_collection_modifyitems(config, items):
    """Mark known broker defects as strict expected failures on their versions."""
    defects = {key: d for key, d in DEFECTS.items() if any(item.get_closest_marker(f"defect_{key}") for item in items)}
    version = workqueue_plugin.session_broker(config).version if defects else None
    for key, defect in defects.items():
        if version not in defect["versions"]:
            continue                    # not known to fail here: the scenario must pass
        reason = (f"RabbitMQ {version} defect {key}: {defect['title']} ({', '.join(defect['references'])}); "
                  f"if this passes, the defect is gone on {version}: update features/defects.toml")
        for item in items:
            if item.get_closest_marker(f"defect_{key}"):
                item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
