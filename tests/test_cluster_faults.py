"""Jepsen's faults on the cluster: the quorum queue's leader node paused, and cut off by a
network partition (its link dropped: a node cluster's nodes each have a network namespace and
an address of their own, a container cluster's nodes a veth on the Docker bridge)."""

from pytest_bdd import scenarios

scenarios("cluster/faults.feature")
