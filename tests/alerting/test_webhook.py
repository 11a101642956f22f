"""Alerts POSTed to a real receiver on loopback: retried with growing waits, in order, given up when retrying
cannot help, and never blocking whoever queues them."""

from __future__ import annotations

import time
from typing import Any

from spyglass.alerting.webhook import WebhookSender
from tests.support.webhook_receiver import webhook_receiver


def sender(url: str, **options: Any) -> WebhookSender:
    webhook = WebhookSender(
        url, **{"first_backoff_s": 0.05, "max_backoff_s": 0.4, "timeout_s": 2.0, **options}
    )
    webhook.start()
    return webhook


def test_failures_are_retried_with_exponential_backoff_and_order_is_kept() -> None:
    with webhook_receiver(statuses=[503, 500, 429]) as receiver:
        webhook = sender(receiver.url)
        try:
            webhook.notify({"id": "a1", "state": "firing"})
            webhook.notify({"id": "a1", "state": "resolved"})
            bodies = receiver.wait_for(2)
        finally:
            webhook.stop()
        assert [b["state"] for b in bodies] == ["firing", "resolved"]
        gaps = [
            later - earlier for earlier, later in zip(receiver.attempts, receiver.attempts[1:], strict=False)
        ]
        # Waits of 0.05, 0.1, 0.2 s between the failed tries, each about twice the one before.
        assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2
        assert webhook.status() == {"queued": 0, "delivered": 2, "retried": 3, "failed": 0, "dropped": 0}


def test_a_refusal_is_not_retried() -> None:
    with webhook_receiver(statuses=[400]) as receiver:
        webhook = sender(receiver.url)
        try:
            webhook.notify({"id": "bad"})
            webhook.notify({"id": "good"})
            bodies = receiver.wait_for(1)
        finally:
            webhook.stop()
        assert [b["id"] for b in bodies] == ["good"] and len(receiver.attempts) == 2
        assert webhook.status()["failed"] == 1


def test_notify_never_blocks_and_the_queue_is_bounded() -> None:
    with webhook_receiver(delay_s=0.5) as receiver:
        webhook = sender(receiver.url, max_queued=3)
        try:
            began = time.monotonic()
            for i in range(10):
                webhook.notify({"id": str(i)})
            assert time.monotonic() - began < 0.1
            assert webhook.status()["dropped"] >= 10 - 3 - 1
        finally:
            webhook.stop(timeout_s=5)


def test_an_unreachable_receiver_gives_up_and_stop_does_not_wait_for_the_backoff() -> None:
    with webhook_receiver() as receiver:
        url = receiver.url
    webhook = sender(url, max_attempts=3)
    webhook.notify({"id": "lost"})
    deadline = time.monotonic() + 10
    while webhook.status()["failed"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert webhook.status()["failed"] == 1 and webhook.status()["retried"] == 2
    slow = sender(url, first_backoff_s=60.0)
    slow.notify({"id": "waiting"})
    time.sleep(0.2)
    began = time.monotonic()
    slow.stop()
    assert time.monotonic() - began < 2
    assert slow.status()["dropped"] == 1
