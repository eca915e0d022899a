@production
Feature: A worker whose consumer the broker cancels consumes again
  The broker cancels a consumer (basic.cancel) when its queue goes away: deleted by an operator,
  or lost with its node; RabbitMQ 4.3 also cancels the consumer of a quorum queue whose task
  outlasted the consumer timeout. A cancelled consumer gets nothing more on its channel, and
  the connection stays open: a worker that does not act on the cancel sits there, alive and
  idle. This worker connects again, declares its queue again, and consumes.

  Rule: A worker consumes again after the broker cancels its consumer

    Scenario: The task queue is deleted under a waiting worker
      Given worker "alice" is waiting for tasks
      When the status command deletes "task_queue"
      And the task "after the delete" is sent
      Then "alice" does "after the delete" and nothing else
