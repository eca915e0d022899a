@production @quorum
Feature: Quorum task queues
  Today's tutorial declares task_queue as a quorum queue (replicated, always durable). The
  chapter's guarantees hold on it just the same.

  Background:
    Given the task queue is a quorum queue

  Rule: Round robin, acknowledgment and durability hold on a quorum queue

    Scenario: Two workers share five tasks
      Given workers "alice" and "bob" are waiting for tasks, with no prefetch limit
      When the tasks "task 1", "task 2", "task 3", "task 4" and "task 5" are sent
      Then one worker does "task 1", "task 3" and "task 5", the other "task 2" and "task 4"

    Scenario: A killed worker's task is redelivered
      Given worker "alice" is working on a long task
      And worker "bob" is waiting for tasks
      When "alice" is killed
      Then "bob" does the long task, flagged as redelivered

    # A crash within moments of the queue's declaration can leave a new quorum queue
    # unavailable after recovery (seen on 3.10.8 and 4.3.6; see the README): the crash case
    # is specified on classic queues in reliability/durability.feature.
    @broker_control
    Scenario: Tasks survive a broker restart
      Given 5 persistent tasks are waiting in the task queue
      When the broker restarts
      Then a worker does all 5 tasks
