"""Jepsen's faults on the cluster: the quorum queue's leader node paused, and cut off by a
network partition (the container backend; a node cluster's nodes share 127.0.0.1)."""

from pytest_bdd import scenarios

scenarios("cluster/faults.feature")
