"""The producer's confirm book-keeping (workqueue._batch.Batch), with no broker: delivery tags,
multiple and out-of-order confirms, re-sends after a lost connection and after nacks."""

from workqueue._batch import Batch


def sent(batch, count):
    return [body.decode() for body in batch.take(count)]


def test_take_sends_up_to_the_window_and_is_done_when_all_are_confirmed():
    batch = Batch(iter(["a", "b", "c"]), window=2)
    assert sent(batch, batch.window - batch.unconfirmed) == ["a", "b"] and batch.last_tag == 2
    assert [b.decode() for b in batch.confirm(2, multiple=True)] == ["a", "b"] and not batch.done
    assert sent(batch, batch.window - batch.unconfirmed) == ["c"]
    assert [b.decode() for b in batch.confirm(3, multiple=False)] == ["c"] and batch.done


def test_a_tag_confirmed_alone_ahead_of_the_first_is_kept_aside_until_the_ones_before_it():
    batch = Batch(iter(["a", "b", "c", "d"]), window=4)
    sent(batch, 4)
    assert [b.decode() for b in batch.confirm(3, multiple=False)] == ["c"]
    assert batch.unconfirmed == 3 and batch.first_unconfirmed() == b"a"
    assert [b.decode() for b in batch.confirm(2, multiple=True)] == ["a", "b"]     # c is not counted twice
    assert batch.unconfirmed == 1 and batch.first_unconfirmed() == b"d"
    assert [b.decode() for b in batch.confirm(4, multiple=False)] == ["d"]
    assert sent(batch, 4) == [] and batch.done          # nothing more to send: done


def test_a_confirm_of_a_tag_already_confirmed_counts_nothing():
    batch = Batch(iter(["a", "b"]), window=2)
    sent(batch, 2)
    batch.confirm(2, multiple=False)
    assert batch.confirm(2, multiple=False) == [] and batch.unconfirmed == 1


def test_after_a_lost_connection_the_unconfirmed_tasks_go_first_in_their_order_with_tags_from_one():
    batch = Batch(iter(["a", "b", "c", "d", "e"]), window=4)
    sent(batch, 4)                                        # tags 1-4
    batch.confirm(1, multiple=False)
    batch.confirm(3, multiple=False)                      # b and d unconfirmed
    batch.fail(RuntimeError("lost"), lost=True)
    batch.requeue_unconfirmed()
    assert batch.error is None and not batch.lost
    batch.rebase(1)                                       # a new channel
    assert sent(batch, 4) == ["b", "d", "e"]
    assert [b.decode() for b in batch.confirm(3, multiple=True)] == ["b", "d", "e"] and batch.done


def test_a_nacked_task_is_sent_again_before_any_new_one():
    batch = Batch(iter(["a", "b", "c"]), window=2)
    sent(batch, 2)
    [nacked] = batch.confirm(1, multiple=False)
    batch.resend(nacked)
    assert sent(batch, 1) == ["a"]


def test_acked_reports_each_confirmed_body_and_ends_a_run_of_nacks():
    confirmed = []
    batch = Batch(iter(["a"]), window=1, on_confirm=confirmed.append)
    batch.nacked_for()
    batch.acked([b"a"])
    assert confirmed == [b"a"] and batch.confirmed == 1 and batch.nacked_since is None


def test_the_first_failure_is_the_one_kept():
    batch = Batch(iter([]), window=1)
    batch.fail(ValueError("first"), lost=True)
    batch.fail(ValueError("second"))
    assert str(batch.error) == "first" and batch.lost


def test_the_bytes_in_flight_stay_within_window_bytes_and_a_larger_task_goes_alone():
    batch = Batch(iter(["aaaa", "bbbb", "cccc", "d" * 10, "e"]), window=10, window_bytes=8)
    assert sent(batch, 10) == ["aaaa", "bbbb"] and batch.unconfirmed_bytes == 8
    assert sent(batch, 10) == []                                 # no room: nothing is lost
    batch.confirm(1, multiple=False)
    assert sent(batch, 10) == ["cccc"] and batch.unconfirmed_bytes == 8
    batch.confirm(3, multiple=True)
    assert batch.unconfirmed_bytes == 0
    assert sent(batch, 10) == ["d" * 10]                         # over the bound, but alone
    assert sent(batch, 10) == []
    batch.confirm(4, multiple=False)
    assert sent(batch, 10) == ["e"]
    batch.confirm(5, multiple=False)
    assert batch.done and batch.unconfirmed_bytes == 0


def test_a_lost_connection_sends_the_bytes_again_within_the_bound():
    batch = Batch(iter(["aaaa", "bbbb", "cccc"]), window=10, window_bytes=8)
    sent(batch, 10)
    batch.requeue_unconfirmed()
    batch.rebase(1)
    assert batch.unconfirmed_bytes == 0
    assert sent(batch, 10) == ["aaaa", "bbbb"]
