"""A provider feed that restarted below our cursor is noticed (then read again from the start)."""

from __future__ import annotations

from disbursement import payments


class FakeFeed:
    def __init__(self, length: int) -> None:
        self.length = length
        self.calls: list[int] = []

    async def settlements_after(self, cursor: int, limit: int = 500):
        self.calls.append(cursor)
        entries = [object() for _ in range(max(0, min(limit, self.length - cursor)))]
        return entries, cursor + len(entries)


async def test_a_feed_shorter_than_our_cursor_has_restarted(monkeypatch) -> None:
    monkeypatch.setattr(payments, "_last_feed_probe", 0.0)
    assert await payments._feed_restarted(FakeFeed(length=3), cursor=253)


async def test_a_feed_that_simply_has_nothing_new_has_not(monkeypatch) -> None:
    monkeypatch.setattr(payments, "_last_feed_probe", 0.0)
    feed = FakeFeed(length=253)
    assert not await payments._feed_restarted(feed, cursor=253)
    assert feed.calls == [252]  # it asks for the entry at our cursor


async def test_the_probe_runs_at_most_every_few_seconds(monkeypatch) -> None:
    monkeypatch.setattr(payments, "_last_feed_probe", 0.0)
    feed = FakeFeed(length=0)
    assert await payments._feed_restarted(feed, cursor=10)
    assert not await payments._feed_restarted(feed, cursor=10)
    assert len(feed.calls) == 1
