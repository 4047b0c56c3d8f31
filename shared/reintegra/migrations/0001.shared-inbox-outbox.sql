-- Plumbing tables every service has in its own schema (search_path is set by the runner).

-- Inbox: one row per consumed event, written in the same transaction as its effect,
-- so a redelivered event is recognised and skipped (the eventsourcing "tracking" row).
CREATE TABLE inbox (
    source       text        NOT NULL,
    event_id     text        NOT NULL,
    content_hash text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);

-- Outbox: events to publish, written in the same transaction as the state change.
-- The relay publishes them in seq order (hence in order per key) and then deletes them.
CREATE TABLE outbox (
    seq         bigserial   PRIMARY KEY,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '[]',
    traceparent text,
    tracestate  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Rows the broker refused for good (e.g. too large for the topic): moved aside so that they
-- cannot stop the rows behind them, and kept for an operator to inspect and replay.
CREATE TABLE outbox_refused (
    seq         bigint      PRIMARY KEY,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea       NOT NULL,
    headers     jsonb       NOT NULL,
    traceparent text,
    tracestate  text,
    error       text        NOT NULL,
    created_at  timestamptz NOT NULL,
    refused_at  timestamptz NOT NULL DEFAULT now()
);
