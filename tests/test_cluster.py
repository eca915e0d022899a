"""A cluster of three nodes: quorum failover, and the classic queue that waits for its node."""

from pytest_bdd import scenarios

scenarios("cluster/failover.feature")
