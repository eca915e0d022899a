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
      And the broker has "task_queue" as a quorum queue

    Scenario: A killed worker's task is redelivered
      Given worker "alice" is working on a long task
      And worker "bob" is waiting for tasks
      When "alice" is killed
      Then "bob" does the long task, flagged as redelivered

    @broker_control
    Scenario: Tasks survive a broker restart
      Given 5 persistent tasks are waiting in the task queue
      When the broker restarts
      And a worker takes the queue
      Then the worker does all 5 tasks
      And the broker has "task_queue" as a quorum queue

  # A RabbitMQ defect (features/defects.toml): an expected failure on the versions listed
  # there; a version that fixes it turns this scenario red, saying the defect is gone.
  Rule: Confirmed tasks on a new quorum queue survive a broker crash

    @broker_control @defect_quorum_early_crash
    Scenario: A crash right after the queue is declared
      Given 200 persistent tasks are waiting in the task queue
      When the broker crashes at once and recovers
      And a worker takes the queue
      Then the worker does all 200 tasks

  # The broker answers a quorum queue's declaration before its replica runs: a worker that
  # declares the queue while another worker's declaration is starting it is refused its
  # consumer (541 INTERNAL_ERROR: RabbitMQ 3.10 and 4.0 crash the channel on `noproc`, 4.1 and
  # later say "failed consuming from quorum queue"). Three workers started together on a new
  # quorum queue met it 2 times in 30 on RabbitMQ 3.10.8 here; a stopped replica makes it
  # certain. The queue is fine a moment later: a worker that takes the refusal as final is gone.
  Rule: A worker refused a consumer by a quorum queue that is not running yet tries again

    @broker_control
    Scenario: A worker starts while the task queue's replica is down
      Given the task queue exists, its replica stopped
      When worker "alice" starts, and is turned away
      And the task queue's replica starts again
      And the task "after the replica is back" is sent
      Then "alice" kept trying, and does "after the replica is back" and nothing else
