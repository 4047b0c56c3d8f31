"""The demo's second act: a person already assisted comes back under a new case id, and a held
case is reviewed through the CLI, four eyes included, then paid like any other."""

from __future__ import annotations

import os
import subprocess
import sys

from reintegra.contract import samples
from reintegra.contract.upstream import CASE_REGISTERED, PLAN_APPROVED, RETURN_COMPLETED
from rich.console import Console
from rich.text import Text

from reintegra_stack.demo.scenario import Scenario
from reintegra_stack.demo.watch import PipelineWatcher

OTHER_CASE_SYSTEM = "urn:casesys:ma-oujda"
PLAN_AUTHOR = "caseworker:k.benali"  # approved_by of every sample plan


def _cli(console: Console, env: dict[str, str], *args: str, show: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "reintegra_stack.cli", *args], env=env, capture_output=True,
                            text=True, timeout=120)
    if show:
        console.print(Text(f"$ reintegra {' '.join(args)}", style="bold cyan"))
        output = (result.stdout + result.stderr).rstrip()
        if output:
            console.print(Text(output))
    return result


def _token(console: Console, env: dict[str, str], username: str, *extra: str) -> str:
    result = _cli(console, env, "users", "add", username, "--role", "reviewer", "--token", "demo", *extra, show=False)
    if result.returncode != 0:
        raise RuntimeError(f"reintegra users add {username}: {result.stderr.strip()}")
    console.print(Text(f"$ reintegra users add {username} --role reviewer {' '.join(extra)} --token demo"
                       "   (token printed once)", style="bold cyan"))
    return result.stdout.strip().splitlines()[-1]


def _returning_person(case_id: str, document_number: str) -> list:
    registered = samples.sample_case_registered(case_id, document_number=document_number, person_id=f"P-{case_id}",
                                                vulnerabilities=[])
    plan = samples.sample_plan_approved(case_id, f"PL-{case_id}", currency="XOF", cash_amount="200000", inkind=False)
    return [samples.structured_record(samples.cloudevent(t, case_id, d, source=OTHER_CASE_SYSTEM))
            for t, d in ((CASE_REGISTERED, registered), (RETURN_COMPLETED, samples.sample_return_completed(case_id)),
                         (PLAN_APPROVED, plan))]


async def second_act(stack, scenario: Scenario, first: PipelineWatcher, console: Console, publish) -> bool:
    console.rule("Already assisted, and the review queue")
    paid = [c for c in scenario.cases if c.kind == "cash" and first.observed.last_status.get(c.case_id) == c.expected_final]
    held = [c for c in scenario.cases if c.kind == "review"
            and first.observed.last_status.get(c.case_id) == "eligibility.review_required"]
    if not paid or not held:
        console.print("[yellow]The sample has no paid cash case or no held case to show.[/]")
        return True
    returning, to_review = paid[0], held[0]
    prefix = scenario.cases[0].case_id.rsplit("-", 1)[0]
    again = f"{prefix}-AGAIN"
    watcher = PipelineWatcher(stack.bootstrap_servers, prefix, {again: "eligibility.review_required",
                                                                to_review.case_id: "grant.completed"})
    await watcher.start()
    try:
        console.print(f"The person of case [bold]{returning.case_id}[/] (paid) registers again as [bold]{again}[/] "
                      f"from another case system ({OTHER_CASE_SYSTEM}), document number written differently.")
        document = f"DOC-{returning.case_id}".lower().replace("-", " ")
        await publish(stack.bootstrap_servers, _returning_person(again, document))
        await watcher.wait_until(lambda: watcher.observed.last_status.get(again) == "eligibility.review_required", 60)
        held_again = watcher.observed.statuses_of(again, "eligibility.review_required")
        for reason in (held_again[0]["reasons"] if held_again else []):
            console.print(Text(f"  held: {reason['code']}: {reason['message']}"))

        env = {**os.environ, "COLUMNS": str(max(console.width, 120)), "DATABASE_URL": stack.database_url, "REINTEGRA_STATE_DIR": str(stack.state_dir),
               "REINTEGRA_REVIEW_API_URL": stack.review_api_url}
        run = prefix.rsplit("-", 1)[1].lower()
        author = _token(console, env, f"k.benali.{run}", "--upstream-id", PLAN_AUTHOR)
        reviewer = _token(console, env, f"a.diallo.{run}")
        _cli(console, {**env, "REINTEGRA_API_TOKEN": reviewer}, "review", "list")
        _cli(console, {**env, "REINTEGRA_API_TOKEN": reviewer}, "review", "show", to_review.case_id)
        console.print("The caseworker who approved the plan tries to approve it too (four eyes):")
        refused = _cli(console, {**env, "REINTEGRA_API_TOKEN": author}, "review", "approve", to_review.case_id,
                       "--comment", "I know this family")
        approved = _cli(console, {**env, "REINTEGRA_API_TOKEN": reviewer}, "review", "approve", to_review.case_id,
                        "--comment", "Best-interests determination done; guardian present")
        paid_out = await watcher.wait_until(
            lambda: watcher.observed.last_status.get(to_review.case_id) == "grant.completed", 90)
        console.print(f"{to_review.case_id}: {watcher.observed.last_status.get(to_review.case_id)} "
                      f"(paid {watcher.observed.paid() or 'nothing'}) after the review.")
    finally:
        await watcher.stop()
    return bool(held_again) and refused.returncode == 1 and approved.returncode == 0 and paid_out
