@production
Feature: Heartbeats, long tasks and frozen workers
  Heartbeats tell the broker a worker is alive. The worker runs its task off pika's I/O loop,
  so heartbeats keep flowing through a task far longer than the heartbeat; a worker that is
  frozen (SIGSTOP) stops sending them, and the broker gives its task to another worker. A short
  heartbeat is 1 s for this worker; another implementation (the conformance suite) uses the
  shortest its manifest says it works with, and its task is as many of its heartbeats long.

  @conformance
  Rule: A long task does not cost the connection

    Scenario: A task of many heartbeats is done once
      Given worker "alice" with a short heartbeat is working on a task of 8 heartbeats
      Then "alice" does that task once, on the same connection
      And the queue "task_queue" holds no tasks

  @conformance
  Rule: A frozen worker's task goes to another worker

    Scenario: A worker frozen in the middle of a task
      Given worker "alice" with a short heartbeat is working on a long task
      And worker "bob" is waiting for tasks
      When "alice" is frozen
      Then "bob" does the long task, flagged as redelivered
