@production
Feature: Bad input
  Whatever the producer is given, it answers with one line on stderr and a documented exit
  code, loses nothing already queued, and never prints a password.

  Background:
    Given 3 persistent tasks are waiting in the durable queue "task_queue"

  Rule: Bad input is refused in one line, and the queue keeps its tasks

    Scenario Outline: The producer is given <input>
      When the producer is given <input>
      Then the producer fails with exit code <code> and one line saying "<says>"
      And no line it printed contains a password
      And the queue "task_queue" still holds 3 tasks

      Examples:
        | input                         | code | says             |
        | an empty task                 | 2    | empty task       |
        | a binary, non-UTF-8 task      | 2    | not UTF-8        |
        | a 16 MiB task                 | 2    | --max-bytes      |
        | a task of 10,000 dots         | 2    | --max-dots       |
        | a malformed broker URL        | 2    | malformed        |
        | a port where nothing listens  | 3    | cannot reach     |
        | a wrong password              | 4    | ACCESS_REFUSED   |
