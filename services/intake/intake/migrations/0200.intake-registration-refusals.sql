-- depends: 0100.intake-cases

-- Cases whose case.registered was refused (invalid, no consent, ...) and that are not registered.
-- Their later events are still parked, and upstream is told why they wait; a valid registration
-- deletes the row and releases them. No personal data: the refused payload is not kept.
CREATE TABLE registration_refusals (
    case_id    text        PRIMARY KEY,
    source     text        NOT NULL,          -- who sent the last refused registration
    event_id   text,                          -- its id, when it could be read
    refused_at timestamptz NOT NULL DEFAULT now()
);
