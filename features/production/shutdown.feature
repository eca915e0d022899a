@production
Feature: Graceful shutdown
  SIGTERM or Ctrl+C asks a worker to stop: it takes no new task, finishes and acknowledges the
  one in hand, and exits 0. A second Ctrl+C aborts at once and the task goes back to the queue.

  @conformance
  Rule: A worker asked to stop finishes its task first

    Scenario: SIGTERM during a task
      Given worker "alice" is working on a long task
      When "alice" is asked to stop
      Then "alice" finishes the long task and exits with code 0, without a traceback
      And the queue "task_queue" holds no tasks

    Scenario: SIGTERM with tasks waiting for the worker
      Given worker "alice" is working on a long task, with 3 more tasks sent to her
      When "alice" is asked to stop
      Then "alice" finishes the long task and exits with code 0, without a traceback
      And the queue "task_queue" holds 3 tasks

  @contrast
  Rule: A worker that is killed or aborted leaves its task to the queue

    Scenario: SIGKILL during a task
      Given worker "alice" is working on a long task
      When "alice" is killed
      Then the queue "task_queue" shows 1 ready, 0 unacknowledged and 0 consumers

    Scenario: A second Ctrl+C aborts at once
      Given worker "alice" is busy with a task that outlasts the scenario
      When "alice" is interrupted twice
      Then "alice" exits with code 130, without a traceback
      And the queue "task_queue" shows 1 ready, 0 unacknowledged and 0 consumers
