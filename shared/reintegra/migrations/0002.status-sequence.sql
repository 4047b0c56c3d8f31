-- The last status sequence number each case got from this service (see reintegra/status_sequence.py).
CREATE TABLE status_clocks (
    case_id    text   PRIMARY KEY,
    last_seq   bigint NOT NULL
);
