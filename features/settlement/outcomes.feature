@production
Feature: How a worker settles a task it could not do
  AMQP 1.0 gives a worker three ways to hand back a task it could not do: released (not the
  task's fault: give it to someone), modified with delivery-failed (it failed here: count it) and
  rejected (it cannot be done: dead-letter it). A quorum queue's delivery limit counts failed
  deliveries: with a limit of 3, a task is given a fourth time after three failures and
  dead-lettered at the fourth (RabbitMQ 4.3; on 4.0 every return counts, a release too).
  AMQP 0-9-1 has no "modified": these rules are for workers that choose an outcome, which the
  contract asks for by WORKER_SETTLE_FAILED; the project's worker counts tries itself
  (poison.feature).

  @conformance @needs_settle_failed
  Rule: A released task goes back to its queue, and the delivery limit does not count it

    @defect_released_counted_before_4_3
    Scenario: A failing task released, on a quorum queue with a delivery limit
      Given a quorum task queue with a delivery limit of 3 and the dead-letter queue "task_queue.dead"
      And worker "alice" is waiting for tasks, releasing any task that mentions poison
      When the task "poison pill" is sent
      Then "alice" is given "poison pill" again and again, past the delivery limit, and it is not dead-lettered

  @conformance @needs_settle_failed
  Rule: A task whose delivery failed is counted, and dead-lettered past the delivery limit

    Scenario: A failing task modified as failed, on a quorum queue with a delivery limit
      Given a quorum task queue with a delivery limit of 3 and the dead-letter queue "task_queue.dead"
      And worker "alice" is waiting for tasks, failing the delivery of any task that mentions poison
      When the task "poison pill" is sent
      Then "alice" is given "poison pill" 4 times
      And the dead-letter queue "task_queue.dead" holds "poison pill", past its delivery limit

  @conformance @needs_settle_failed
  Rule: A rejected task is dead-lettered at once

    Scenario: A failing task rejected, on a quorum queue with a delivery limit
      Given a quorum task queue with a delivery limit of 3 and the dead-letter queue "task_queue.dead"
      And worker "alice" is waiting for tasks, rejecting any task that mentions poison
      When the task "poison pill" is sent
      Then "alice" is given "poison pill" once
      And the dead-letter queue "task_queue.dead" holds "poison pill", rejected
