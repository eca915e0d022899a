@production @broker_control
Feature: Workers ride out broker restarts and crashes
  A worker whose connection drops reconnects with backoff and resumes consuming; a task it was
  doing when the broker went away is redelivered, so every confirmed task is done at least once.

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

  @contrast
  Rule: A worker told not to reconnect exits when the broker goes away

    Scenario: Without reconnection the worker exits with one line
      Given worker "alice" is waiting for tasks, without reconnecting
      When the broker crashes and recovers
      Then "alice" exits with code 3 and one line saying "lost"
