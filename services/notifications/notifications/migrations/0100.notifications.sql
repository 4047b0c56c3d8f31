-- One row per notice: rendered once, sent once (the gateway is told the notice id).
CREATE TABLE notices (
    notice_id   text        PRIMARY KEY,
    case_id     text        NOT NULL,
    kind        text        NOT NULL,
    language    text        NOT NULL,
    phone       text,
    body        text        NOT NULL,
    status      text        NOT NULL DEFAULT 'pending',  -- pending | sent | undeliverable
    traceparent text,
    tracestate  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX notices_pending ON notices (created_at) WHERE status = 'pending';
