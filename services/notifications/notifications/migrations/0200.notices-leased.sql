-- depends: 0100.notifications

-- Sending under a lease, as disbursement pays through providers: a sender claims a notice in a
-- short transaction (status 'sending', a fresh lease token, the lease's end, one more attempt),
-- calls the gateway with no transaction open, and records the answer in another short
-- transaction under that token only. A sender that dies in between leaves its lease to expire;
-- the next one sends again, and the gateway recognises the notice id.
--
--   pending        waiting to be sent (first time, or again after a transient failure, from next_attempt_at)
--   sending        leased to a sender until lease_until
--   sent           the gateway took it (sent_at)
--   rejected       the gateway refused it for good (an invalid number...): last_error says why
--   failed         max attempts reached without the gateway taking it: last_error is the last failure
--   undeliverable  no number to send it to
--
-- Additive: rows written before keep their status; pending ones are due at once.
ALTER TABLE notices
    ADD COLUMN lease_token     uuid,
    ADD COLUMN lease_until     timestamptz,
    ADD COLUMN attempts        integer     NOT NULL DEFAULT 0,
    -- When a sender may take the notice next: after its backoff (pending), when its lease ends (sending).
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_error      text;

ALTER TABLE notices ADD CONSTRAINT notices_status_known
    CHECK (status IN ('pending', 'sending', 'sent', 'rejected', 'failed', 'undeliverable'));

-- The senders' queue: what is due, oldest first (`repository.claim_due`).
DROP INDEX notices_pending;
CREATE INDEX notices_due ON notices (next_attempt_at) WHERE status IN ('pending', 'sending');
