@production @broker_control
Feature: Workers and producers ride out broker restarts and crashes
  A worker whose connection drops reconnects with backoff and resumes consuming; a task it was
  doing when the broker went away is redelivered, so every confirmed task is done at least once.
  A producer told to reconnect sends again every task the broker had not confirmed when the
  connection dropped, or when the broker went silent for longer than its confirm timeout: a
  task may reach the queue twice, never zero times.

  @conformance
  Rule: A worker reconnects and resumes; no task is lost and no worker exits

    Scenario Outline: A worker carries on through a broker <event>
      Given worker "alice" is working on a long task
      When the broker <event>
      And 3 more tasks are sent
      Then "alice" does the long task and the 3 tasks, each at least once
      And "alice" is still running

      Examples:
        | event                |
        | restarts             |
        | crashes and recovers |

  Rule: A worker tries again at least once a second while the broker is down

    # Its back-off doubles from 0.2 s up to 1 s (Worker's max_reconnect_delay): a broker back
    # after a long outage is found within about a second, not after the last doubled wait.
    Scenario: The broker is down for 15 seconds
      Given worker "alice" is waiting for tasks
      When the broker is down for 15 seconds
      And the task "after the outage" is sent
      Then "alice" tried to connect at least once every 3 seconds while the broker was down
      And "alice" does "after the outage" and nothing else

  Rule: A producer re-sends what was not confirmed when its connection dropped

    Scenario: The broker crashes while a producer is sending
      Given the task queue has been declared a few seconds ago
      When 5000 tasks are sent while the broker crashes and recovers
      And a worker takes the queue
      Then every task is confirmed, after a reconnection
      And the worker does every task at least once

  Rule: A producer that hears no confirm for a while sends again through a new connection

    Scenario: The broker freezes while a producer is sending
      When 2000 tasks are sent while the broker is frozen for 10 seconds, to a producer that waits 3 seconds for a confirm
      And a worker takes the queue
      Then every task is confirmed, after a reconnection
      And the producer never held more than its window of 100 tasks unconfirmed
      And the worker does every task at least once

  @contrast
  Rule: A worker told not to reconnect exits when the broker goes away

    Scenario: Without reconnection the worker exits with one line
      Given worker "alice" is waiting for tasks, without reconnecting
      When the broker crashes and recovers
      Then "alice" exits with code 3 and one line saying "lost"
