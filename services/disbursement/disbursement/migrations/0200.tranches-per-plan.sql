-- depends: 0100.disbursement-ledger

-- A tranche belongs to a plan: a replacement plan (another plan_id) gets tranches of its own next
-- to what the old plan released, so a released tranche can never be re-created or re-priced.

-- Until now a revision with another plan_id rewrote the unreleased tranches in place, so one case's
-- rows could carry several plan_ids although they formed one plan. They all belong to the grant's
-- current plan: relabel them, otherwise the next revision of that plan would not see the released
-- ones and would release them a second time. References stay as they are (they are what the
-- provider knows), and the old key was unique per (case_id, component_id, seq), so the new one is.
UPDATE tranches t
SET plan_id = f.facts -> 'grant' ->> 'plan_id'
FROM case_facts f
WHERE f.case_id = t.case_id
  AND f.facts -> 'grant' ->> 'plan_id' IS NOT NULL
  AND t.plan_id <> f.facts -> 'grant' ->> 'plan_id';

ALTER TABLE tranches
    DROP CONSTRAINT tranches_pkey,
    ADD PRIMARY KEY (case_id, plan_id, component_id, seq);
