@production
Feature: A task that kills its worker
  Some tasks do not fail, they kill the process that runs them: a crash in a C library, the
  kernel's out-of-memory killer. The broker sees the worker's connection close with the task
  unacknowledged and gives it to the next worker, which dies too. A classic queue does that for
  ever. A quorum queue stops at its delivery limit and dead-letters the task (measured
  2026-12-02: with no limit set, RabbitMQ 3.10.8 loops for ever, 4.0.5 and 4.3.6 stop after
  21 deliveries, their default limit of 20). With a delivery limit set, the project's worker
  counts a task that comes back unacknowledged as a try before it runs it again, on either
  queue type: such a task is run as often as the limit says, then dead-lettered.

  @conformance
  Rule: With a delivery limit, a task that keeps killing its workers is dead-lettered

    Scenario Outline: A task kills each worker that runs it, on a <type> queue
      Given a <type> task queue with a delivery limit of 3 and the dead-letter queue "task_queue.dead"
      And worker "alice" is restarted whenever it dies, and dies on any task that mentions crash
      When the tasks "crash", "task 1" and "task 2" are sent
      Then "crash" kills 3 workers in turn, and the others do "task 1" and "task 2"
      And the dead-letter queue "task_queue.dead" holds "crash", rejected

      Examples:
        | type    |
        | classic |
        | quorum  |

  @contrast @conformance
  Rule: Without a delivery limit, a classic queue gives such a task to one worker after another

    Scenario: A task kills each worker that runs it, on a classic queue without a delivery limit
      Given worker "alice" is restarted whenever it dies, and dies on any task that mentions crash
      When the task "crash" is sent
      Then "crash" kills 6 workers in turn, and is still in the queue
