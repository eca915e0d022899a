@production @broker_control @broker_settings
Feature: A resource alarm blocks the producers, not the workers
  A node low on memory or disk raises a resource alarm: it blocks every connection that
  publishes (connection.blocked, with the reason) and goes on delivering to consumers, so the
  workers drain the queue. The producer says it is blocked and why, and waits: it sends on once
  the alarm clears, or gives up after its blocked timeout (new_task --blocked-timeout, 60 s by
  default) with exit code 8, having reported nothing as sent that was not confirmed. An alarm
  blocks every producer of its broker: these scenarios run on a broker no other scenario uses meanwhile.

  Background:
    Given a broker whose alarms reach no other scenario

  Rule: During a resource alarm the workers go on and the producer waits

    @conformance
    Scenario: A worker started during a memory alarm does the waiting tasks
      Given the broker raises a memory alarm, with 3 tasks waiting in the task queue
      When worker "alice" takes the queue
      Then "alice" does the 3 waiting tasks, with the alarm still up

    Scenario: A producer waits out a memory alarm while a worker drains the queue
      Given the broker raises a memory alarm, with 3 tasks waiting in the task queue
      When the task "after the alarm" is sent with new_task, and worker "alice" takes the queue
      Then "alice" does the 3 waiting tasks while new_task waits, saying it is blocked by "low on memory"
      When the alarm clears
      Then new_task exits with code 0 and "alice" does "after the alarm"

  @contrast
  Rule: A producer blocked for longer than its blocked timeout gives up, and says why

    Scenario: new_task gives up after its blocked timeout
      Given the broker raises a memory alarm
      When the task "during the alarm" is sent with new_task, giving up after 3 seconds blocked
      Then new_task says it is blocked by "low on memory", then fails with exit code 8 and one line saying "blocked publishing for 3 s"

  Rule: A producer blocked by an alarm waits on the alarm, not on its confirm timeout

    Scenario: A producer that waits 2 seconds for a confirm is blocked for longer
      Given the broker raises a memory alarm
      When 10 tasks are sent by a producer that waits 2 seconds for a confirm, and the alarm clears after it has been blocked for 6 seconds
      Then every task is confirmed, with no reconnection
      And the queue "task_queue" holds 10 tasks
