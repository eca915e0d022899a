@dispatch
Feature: Round-robin dispatching
  One queue, several workers: RabbitMQ sends each task to the next worker in turn, so adding
  workers is how a work queue scales out. The tutorial's first workers take whatever they are
  sent (no prefetch limit), which makes the turns exact.

  @conformance
  Rule: Each task goes to the next waiting worker in turn

    Scenario: Two workers share five tasks
      Given workers "alice" and "bob" are waiting for tasks, with no prefetch limit
      When the tasks "task 1", "task 2", "task 3", "task 4" and "task 5" are sent
      Then "alice" does "task 1", "task 3" and "task 5"
      And "bob" does "task 2" and "task 4"

    Scenario: A worker that joins shares the next backlog
      Given workers "alice" and "bob" are waiting for tasks, with no prefetch limit
      And worker "carol" joins them
      When 6 tasks are sent
      Then "alice", "bob" and "carol" each do 2 of them
