@operations
Feature: Monitoring queues
  `python -m workqueue.status` shows each queue's ready and unacknowledged tasks and its
  consumers, the numbers of `rabbitmqctl list_queues`, from the management HTTP API; it also
  purges and deletes queues.

  Rule: The status command shows what the broker shows

    @broker_control
    Scenario: Status during work agrees with rabbitmqctl
      Given worker "alice" is busy with a task that outlasts the scenario
      When 3 more tasks are sent
      Then the status command shows "task_queue" with 3 ready, 1 unacknowledged and 1 consumer
      And rabbitmqctl list_queues shows the same numbers

  Rule: The status command purges and deletes queues

    Scenario: Purge empties a queue
      Given 4 persistent tasks are waiting in the durable queue "task_queue"
      When the status command purges "task_queue"
      Then the status command shows "task_queue" with 0 ready, 0 unacknowledged and 0 consumers

    Scenario: Delete removes a queue
      Given 4 persistent tasks are waiting in the durable queue "task_queue"
      When the status command deletes "task_queue"
      Then the status command does not list "task_queue"
