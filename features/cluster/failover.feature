@cluster @broker_control
Feature: A cluster of three nodes
  Users who outgrow one broker run three RabbitMQ nodes as one cluster. A quorum queue keeps a
  copy of every task on a majority of the nodes and elects a new leader when its leader dies; a
  classic queue lives on one node only. Workers and producers are given every node's address
  and fail over between them. RabbitMQ 4.3 keeps the tasks of a lost node's consumers for a
  minute before others get them (consumer_disconnected_timeout); the test cluster sets 5 s.

  Background:
    Given a cluster of three nodes

  Rule: A quorum task queue survives the crash of its leader node while tasks flow

    Scenario: The leader node crashes in the middle of the work
      Given a quorum task queue with a worker on each node
      When 300 tasks are sent and the queue's leader node crashes halfway
      Then every confirmed task is done at least once
      And another node took over as the queue's leader
      And the producer and the worker on the crashed node carry on through another node
      When the crashed node starts again
      Then it rejoins the cluster with a copy of the queue

  Rule: A client whose connection is lost tries another node first

    Scenario: The broker closes a worker's connection
      Given a worker given every node, the first node first
      When the broker closes that worker's connection
      Then the worker consumes again, through the second node

  @contrast
  Rule: A classic queue lives on one node, and is unavailable while that node is down

    Scenario: The node of a classic queue crashes
      Given 5 persistent tasks are waiting in a classic task queue on one node
      When that node crashes
      Then a task sent through the other nodes is not accepted (exit code 6)
      When the node starts again and a worker takes the queue
      Then the worker does all 5 tasks
