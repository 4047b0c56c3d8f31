"""Two instances handling the first events of one case: the second waits for the first to commit
(its ledger does not exist yet, so a row lock alone would not hold it), then sees what it wrote."""

from __future__ import annotations

from pathlib import Path

import disbursement
from disbursement import repository
from scratch_schemas import assert_first_events_of_a_case_are_serialised

MIGRATIONS = Path(disbursement.__file__).parent / "migrations"


async def test_a_case_without_a_ledger_yet_is_locked_until_the_first_instance_commits(infra):
    await assert_first_events_of_a_case_are_serialised(infra.database_url, "disbursement_locks", MIGRATIONS,
                                                       repository.load_ledgers)
