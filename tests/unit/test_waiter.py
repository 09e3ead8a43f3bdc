"""The one waiting helper: a predicate polled until it holds or the time is up."""

import time

from ansible.module_utils.zombie_cleaner import waiter


def test_returns_the_first_true_value_without_sleeping_when_it_holds_at_once():
    calls = []
    started = time.monotonic()
    assert waiter.poll_until(lambda: calls.append(1) or "found", 5.0, 1.0) == "found"
    assert calls == [1] and time.monotonic() - started < 0.9   # no sleep of 1 s


def test_polls_at_the_interval_until_the_predicate_holds():
    answers = iter([None, 0, [], "third"])
    assert waiter.poll_until(lambda: next(answers), 5.0, 0.01) == "third"


def test_gives_up_at_the_timeout_with_the_last_false_value():
    calls = []
    started = time.monotonic()
    assert waiter.poll_until(lambda: calls.append(1) or [], 0.2, 0.05) == []
    took = time.monotonic() - started
    assert took >= 0.2 and 3 <= len(calls) <= 6


def test_never_sleeps_past_the_limit_and_calls_at_least_once():
    calls = []
    started = time.monotonic()
    assert waiter.poll_until(lambda: calls.append(1), 0.05, 10.0) is None
    assert time.monotonic() - started < 9.0 and len(calls) == 2      # no sleep of 10 s
    assert waiter.poll_until(lambda: calls.append(1) or False, 0, 10.0) is False
    assert len(calls) == 3
