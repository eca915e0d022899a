@cluster @broker_control
Feature: The leader node paused or cut off
  Jepsen's two faults for a cluster. A paused node (its Erlang VM stopped) keeps its sockets
  open and answers nothing: clients notice it only by their missed heartbeats. A partitioned
  node is cut off from the other nodes and from the clients: its link drops every packet, as
  Jepsen's do, and it keeps its address. Either way the other two nodes
  are a majority: they elect a new leader for the quorum queue and the work goes on through
  them; when the node comes back it rejoins and catches up. Clients here use a 2 second
  heartbeat, so they notice the silent node within seconds. Each fault lasts 20 seconds:
  long enough for a new leader, shorter than the minute after which the other nodes would
  declare the node down (net_ticktime).

  Background:
    Given a cluster of three nodes

  Rule: A quorum task queue rides out a pause of its leader node

    Scenario: The leader node is paused while tasks flow
      Given a quorum task queue with a worker on each node
      When 300 tasks are sent and the queue's leader node is paused for 20 seconds halfway
      Then every confirmed task is done at least once
      And another node took over as the queue's leader
      And the producer and the worker on the paused node carried on through another node
      And the paused node is back in the cluster with a copy of the queue

  Rule: A quorum task queue rides out a partition that cuts its leader node off

    @partition
    Scenario: The leader node is cut off by a partition
      Given a quorum task queue with a worker on each node
      When 300 tasks are sent and the queue's leader node is cut off for 20 seconds halfway
      Then every confirmed task is done at least once
      And another node took over as the queue's leader
      And the producer and the worker on the cut-off node carried on through another node
      And the cut-off node is back in the cluster, at the address it had, with a copy of the queue
