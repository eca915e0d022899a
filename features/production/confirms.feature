@production
Feature: Publisher confirms
  The producer returns only when the broker has confirmed the task: written to disk for a
  persistent task in a durable queue. A task the broker cannot route is reported, not dropped.

  Rule: A confirmed task survives a broker crash

    @broker_control
    Scenario: Confirmed tasks are all there after a crash
      Given 200 persistent tasks are waiting in the durable queue "task_queue"
      When the broker crashes and recovers
      And a worker takes the queue
      Then the worker does all 200 tasks

  Rule: A task to a queue that does not exist is reported as unroutable

    Scenario: The producer refuses to lose a task silently
      When the producer sends "First message." to the missing queue "nowhere", without declaring it
      Then the producer fails with exit code 6 and one line saying "unroutable"
