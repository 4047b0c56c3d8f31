"""``reintegra review``: the eligibility review queue, through the review API.

    export REINTEGRA_API_TOKEN=rgt_...            # a token of a user with the reviewer role
    reintegra review list [--status open]
    reintegra review show MA-2026-000123
    reintegra review approve MA-2026-000123 --comment "documents checked with the guardian"
    reintegra review reject MA-2026-000123 --comment "plan exceeds what the family needs"

The command only talks to the HTTP API (never to the database), so the four-eyes rules that the
API enforces cannot be bypassed from here. The API's address is REINTEGRA_REVIEW_API_URL, else
the local stack's (``reintegra up``), from the port it saved under REINTEGRA_STATE_DIR (default
``.reintegra``). The token is REINTEGRA_API_TOKEN, or the first line of ``--token-file``.

Exit codes: 0 done; 1 the API refused or failed (its error code and message on stderr);
2 a usage error (no token, no API address, bad options).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import typer

ENV_URL = "REINTEGRA_REVIEW_API_URL"
ENV_TOKEN = "REINTEGRA_API_TOKEN"
TIMEOUT_S = 30.0
STATUSES = ("open", "awaiting_second_approval", "approved", "rejected", "superseded", "withdrawn")

review_app = typer.Typer(
    name="review",
    help="The eligibility review queue (four eyes): list, show, approve, reject held cases.",
    no_args_is_help=True,
)


class UsageProblem(Exception):
    """Something the operator must fix before calling the API (exit code 2)."""


class ApiError(Exception):
    """The API refused the request or could not be reached (exit code 1)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


# --------------------------------------------------------------------------- where and who
def review_api_url(environ: Mapping[str, str] = os.environ) -> str:
    url = environ.get(ENV_URL, "").strip()
    if url:
        return url.rstrip("/")
    from reintegra_stack.database import state_dir_from_env
    from reintegra_stack.supervisor import review_api_ports_file

    state_dir = state_dir_from_env(environ)
    ports_file = review_api_ports_file(state_dir)
    try:
        port = int(json.loads(ports_file.read_text())["review-api"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageProblem(
            f"{ENV_URL} is not set and there is no local stack under {state_dir}/ "
            f"(start one with `reintegra up`, or set {ENV_URL}=http://host:8091)"
        ) from None
    return f"http://127.0.0.1:{port}"


def api_token(token_file: Path | None, environ: Mapping[str, str] = os.environ) -> str:
    if token_file is not None:
        try:
            lines = token_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UsageProblem(f"cannot read the token file {token_file}: {exc.strerror}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise UsageProblem(f"the token file {token_file} is empty")
        return token
    token = environ.get(ENV_TOKEN, "").strip()
    if not token:
        raise UsageProblem(f"no API token: set {ENV_TOKEN} (or pass --token-file); "
                           "`reintegra users add NAME --role reviewer --token NAME` issues one")
    return token


# --------------------------------------------------------------------------- HTTP
class ReviewClient:
    def __init__(self, base_url: str, token: str, timeout: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def list(self, status: str | None = None, limit: int = 100) -> list[dict]:
        query = {"limit": limit} | ({"status": status} if status else {})
        return self._call("GET", f"/v1/reviews?{urlencode(query)}")["reviews"]

    def show(self, case_id: str) -> dict:
        return self._call("GET", f"/v1/reviews/{quote(case_id, safe='')}")

    def act(self, case_id: str, action: str, comment: str) -> dict:
        return self._call("POST", f"/v1/reviews/{quote(case_id, safe='')}/{action}", {"comment": comment})

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self._token}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {}),
        })
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                raise error_from_response(exc.code, exc.read()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError("unreachable", f"could not reach the review API at {self.base_url}: {reason}") from None
        except ValueError:
            raise ApiError("bad_response", f"the review API at {self.base_url} did not answer JSON") from None


def error_from_response(status: int, body: bytes) -> ApiError:
    """The API's ``{"error": {"code", "message"}}``, or what can be said without it."""
    try:
        error = json.loads(body)["error"]
        return ApiError(str(error["code"]), str(error.get("message", "")), status)
    except (ValueError, KeyError, TypeError):
        return ApiError(f"http_{status}", f"the review API answered HTTP {status}", status)


# --------------------------------------------------------------------------- output
def _money(value: Any) -> str:
    if isinstance(value, Mapping) and value.get("amount") is not None:
        return f"{value['amount']} {value.get('currency', '')}".strip()
    return "-"


def _when(value: Any) -> str:
    """ISO timestamps shown as UTC to the second: ``2026-10-20 09:30:00``."""
    from datetime import UTC, datetime

    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _programme(review: Mapping[str, Any]) -> str:
    version = review.get("programme_version")
    return f"{review.get('program_code') or '-'}" + (f" ({version})" if version else "")


def _reason_codes(review: Mapping[str, Any]) -> str:
    return ", ".join(str(r.get("code")) for r in review.get("reasons") or [] if isinstance(r, Mapping)) or "-"


def _text(value: Any):
    """Values that come from upstream or the API as Text: "[...]" in them is not rich markup."""
    from rich.text import Text

    if value is None or value == "":
        return Text("-")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, (list, tuple)):
        return Text(", ".join(str(v) for v in value) or "-")
    if isinstance(value, Mapping):
        return Text(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return Text(str(value))


def reviews_table(reviews: list[Mapping[str, Any]], title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("case_id", no_wrap=True, style="bold")
    table.add_column("status", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("programme", overflow="fold")
    table.add_column("plan total", justify="right", no_wrap=True)
    table.add_column("2nd approval", no_wrap=True)
    table.add_column("reasons", overflow="fold")
    table.add_column("opened (UTC)", no_wrap=True)
    for r in reviews:
        table.add_row(_text(r.get("case_id")), _text(r.get("status")), _text(r.get("kind")), _text(_programme(r)),
                      _text(_money(r.get("plan_total"))), _text(bool(r.get("second_approval_needed"))),
                      _text(_reason_codes(r)), _text(_when(r.get("opened_at"))))
    return table


def print_review(console, review: Mapping[str, Any]) -> None:
    from rich.table import Table

    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold", no_wrap=True)
    summary.add_column(overflow="fold")
    for label, value in (
        ("case", review.get("case_id")),
        ("plan", review.get("plan_id")),
        ("programme", _programme(review)),
        ("status", review.get("status")),
        ("kind", review.get("kind")),
        ("plan total", _money(review.get("plan_total"))),
        ("in programme currency", _money(review.get("programme_total"))),
        ("second approval needed", bool(review.get("second_approval_needed"))),
        ("plan approved by", (review.get("plan") or {}).get("approved_by")),
        ("opened (UTC)", _when(review.get("opened_at"))),
        ("updated (UTC)", _when(review.get("updated_at"))),
        ("same person, approved", review.get("other_approved_cases")),
    ):
        if label == "same person, approved" and "other_approved_cases" not in review:
            continue
        summary.add_row(label, _text(value))
    console.print(summary)

    reasons = review.get("reasons") or []
    if reasons:
        table = Table(title="Why it is held", title_justify="left")
        for column in ("code", "field", "message"):
            table.add_column(column, overflow="fold")
        for reason in reasons:
            table.add_row(*(_text(reason.get(k)) for k in ("code", "field", "message")))
        console.print(table)

    facts = review.get("facts") or {}
    if facts:
        table = Table(title="Facts", title_justify="left")
        table.add_column("fact", no_wrap=True)
        table.add_column("value", overflow="fold")
        for key in sorted(facts):
            table.add_row(_text(key), _text(facts[key]))
        console.print(table)

    components = (review.get("plan") or {}).get("components") or []
    if components:
        table = Table(title="Plan", title_justify="left")
        for column in ("component", "modality", "category", "amount", "tranches"):
            table.add_column(column, overflow="fold")
        for c in components:
            tranches = ", ".join(f"{t.get('seq')}: {t.get('share_percent')}% {t.get('release')}"
                                 for t in c.get("tranches") or [])
            table.add_row(_text(c.get("component_id")), _text(c.get("modality")), _text(c.get("category")),
                          _text(_money(c.get("amount"))), _text(tranches))
        console.print(table)

    actions = review.get("actions") or []
    if actions:
        table = Table(title="Actions", title_justify="left")
        for column in ("at (UTC)", "actor", "action", "outcome", "programme version", "comment"):
            table.add_column(column, overflow="fold")
        for a in actions:
            table.add_row(_text(_when(a.get("at"))), _text(a.get("actor")), _text(a.get("action")),
                          _text(a.get("outcome")), _text(a.get("programme_version")), _text(a.get("comment")))
        console.print(table)


OUTCOMES = {
    "approved": "approved: the grant goes on to disbursement",
    "awaiting_second_approval": "approved once: a second, different reviewer must confirm",
    "rejected": "rejected",
}


# --------------------------------------------------------------------------- commands
TokenFile = typer.Option(None, "--token-file", metavar="PATH", dir_okay=False,
                         help=f"Read the API token from this file instead of {ENV_TOKEN}.")


def _client(token_file: Path | None) -> ReviewClient:
    return ReviewClient(review_api_url(), api_token(token_file))


def _run(fn):
    """Errors as one line on stderr and an exit code, never a traceback."""
    try:
        return fn()
    except UsageProblem as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ApiError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(1) from None


def _console():
    from rich.console import Console

    return Console()


@review_app.command("list")
def list_reviews(
    status: str = typer.Option(None, "--status", metavar="STATUS",
                               help=f"One of {', '.join(STATUSES)}; default: open and awaiting_second_approval."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="At most this many reviews, oldest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON instead of a table."),
    token_file: Path = TokenFile,
) -> None:
    """List held cases, oldest first."""
    reviews = _run(lambda: _client(token_file).list(status, limit))
    if as_json:
        typer.echo(json.dumps({"reviews": reviews}, ensure_ascii=False, indent=2))
        return
    console = _console()
    which = status or "open or awaiting a second approval"
    if not reviews:
        console.print(f"No reviews {which}.", markup=False, highlight=False)
        return
    console.print(reviews_table(reviews, f"Reviews: {which}"))
    console.print(f"{len(reviews)} review(s).", highlight=False)


@review_app.command("show")
def show(
    case_id: str = typer.Argument(..., metavar="CASE_ID"),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON instead of tables."),
    token_file: Path = TokenFile,
) -> None:
    """Show one held case: why it is held, its facts, the plan and every action taken."""
    review = _run(lambda: _client(token_file).show(case_id))
    if as_json:
        typer.echo(json.dumps(review, ensure_ascii=False, indent=2))
        return
    print_review(_console(), review)


def _act(action: str, case_id: str, comment: str, token_file: Path | None) -> None:
    review = _run(lambda: _client(token_file).act(case_id, action, comment))
    console = _console()
    print_review(console, review)
    from rich.text import Text

    status = str(review.get("status"))
    console.print(Text.assemble("case ", (str(review.get("case_id", case_id)), "bold"), ": ",
                                OUTCOMES.get(status, status)))


CommentOption = typer.Option(..., "--comment", "-m", help="Why (required; stored in the audit trail).")


@review_app.command("approve")
def approve(
    case_id: str = typer.Argument(..., metavar="CASE_ID"),
    comment: str = CommentOption,
    token_file: Path = TokenFile,
) -> None:
    """Approve a held case (above the programme's threshold a second reviewer must confirm)."""
    _act("approve", case_id, comment, token_file)


@review_app.command("reject")
def reject(
    case_id: str = typer.Argument(..., metavar="CASE_ID"),
    comment: str = CommentOption,
    token_file: Path = TokenFile,
) -> None:
    """Reject a held case."""
    _act("reject", case_id, comment, token_file)


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
