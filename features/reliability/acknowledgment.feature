@reliability
Feature: Message acknowledgment
  A worker acknowledges a task only once it has done it. If the worker dies first (its
  connection closes with the task unacknowledged), RabbitMQ gives the task to another worker.

  Rule: A task whose worker dies before acknowledging it is done by another worker

    @conformance
    Scenario: A killed worker's task is redelivered
      Given worker "alice" is working on a long task
      And worker "bob" is waiting for tasks
      When "alice" is killed
      Then "bob" does the long task, flagged as redelivered
      And the queue "task_queue" holds no tasks

    # Not a conformance scenario: it checks this package's acks of many tasks at once. With tasks
    # of a twentieth of a second, what a kill costs another worker is a race with its own acks.
    Scenario: A worker holding many tasks is killed in the middle of its batch
      Given worker "alice" is waiting for tasks, 120 at a time
      When 150 short tasks are sent
      And "alice" is killed after doing 105 of them
      And worker "bob" takes the queue
      Then every task is done at least once
      And the queue "task_queue" holds no tasks

    @conformance
    Scenario: A task being worked on is unacknowledged, not ready
      Given worker "alice" is busy with a task that outlasts the scenario
      When 2 more tasks are sent
      Then the queue "task_queue" shows 2 ready, 1 unacknowledged and 1 consumer

  Rule: A worker that holds several tasks at a time acknowledges every task it has done

    # Its acks of many done tasks go out as one (multiple); none may be left out.
    Scenario: A worker taking 10 tasks at a time drains the queue
      Given worker "alice" is waiting for tasks, 10 at a time
      When 50 short tasks are sent
      Then every task is done at least once
      And the queue "task_queue" shows 0 ready, 0 unacknowledged and 1 consumer

  @contrast @conformance
  Rule: With automatic acknowledgment, a killed worker's task is lost
    # For an AMQP 1.0 worker, a pre-settled link: the broker settles each task as it sends it.

    Scenario: Auto-ack loses the task of a killed worker
      Given worker "alice" is working on a long task, with automatic acknowledgment
      And worker "bob" is waiting for tasks
      When "alice" is killed
      And the task "after the kill" is sent
      Then "bob" does "after the kill" and nothing else
      And the queue "task_queue" holds no tasks
