-- Intake keeps only what routing needs; personal data flows on to the steps that use it.
CREATE TABLE cases (
    case_id       text        PRIMARY KEY,
    source        text        NOT NULL,
    program_code  text        NOT NULL,
    status        text        NOT NULL,          -- active | withdrawn
    registered_at timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Events that arrived before their case.registered, applied when the case arrives.
CREATE TABLE parked_events (
    id          bigserial   PRIMARY KEY,
    case_id     text        NOT NULL,
    source      text        NOT NULL,
    event_id    text        NOT NULL,
    type        text        NOT NULL,
    data        jsonb       NOT NULL,
    traceparent text,
    tracestate  text,
    parked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_events_case ON parked_events (case_id, id);
CREATE INDEX parked_events_age ON parked_events (parked_at);
