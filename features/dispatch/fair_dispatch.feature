@dispatch
Feature: Fair dispatch
  Round robin alone is blind: it hands out tasks without looking at how busy a worker is.
  With a prefetch of 1 (basic.qos) a worker is sent a new task only once it has acknowledged
  the previous one, so a worker stuck on a heavy task is passed over.

  @conformance
  Rule: With prefetch 1, a busy worker is passed over

    Scenario: Light tasks go to the free worker while the other does a heavy one
      Given workers "alice" and "bob" are waiting for tasks, one at a time
      When a heavy task is sent, then 5 light tasks
      Then the worker that took the heavy task does no light task
      And the other worker does all 5 light tasks

  @contrast
  Rule: Without a prefetch limit, dispatch is blind

    Scenario: Light tasks wait behind the heavy one on the busy worker
      Given workers "alice" and "bob" are waiting for tasks, with no prefetch limit
      When a heavy task is sent, then 5 light tasks
      Then the worker that took the heavy task also does light tasks, after the heavy one
