@production
Feature: Publisher confirms
  The producer returns only when the broker has confirmed the task: written to disk for a
  persistent task in a durable queue. A task the broker cannot route is reported, not dropped.

  Rule: A confirmed task survives a broker crash

    @broker_control
    Scenario: Tasks confirmed a moment before a crash are all there after it
      Given the task queue has been declared a few seconds ago
      When 5000 persistent tasks are sent and the broker crashes as soon as the producer returns
      Then the queue "task_queue" holds 5000 tasks

  Rule: A task to a queue that does not exist is reported as unroutable

    Scenario: The producer refuses to lose a task silently
      When the producer sends "First message." to the missing queue "nowhere", without declaring it
      Then the producer fails with exit code 6 and one line saying "unroutable"
