@production
Feature: Poison tasks
  A task whose handler always fails must not go round forever nor stop the worker: it is tried
  a bounded number of times, then rejected to a dead-letter queue, and the worker goes on.

  @conformance
  Rule: A failing task is retried up to the delivery limit, then dead-lettered

    Scenario Outline: A poison task on a <type> queue
      Given a <type> task queue with a delivery limit of 3 and the dead-letter queue "task_queue.dead"
      And worker "alice" is waiting for tasks, failing on any task that mentions poison
      When the tasks "poison pill", "task 1" and "task 2" are sent
      Then "alice" tries "poison pill" 3 times and does "task 1" and "task 2"
      And the dead-letter queue "task_queue.dead" holds "poison pill", rejected

      Examples:
        | type    |
        | classic |
        | quorum  |
