"""The demo's payments per provider: what disbursement instructed, what the sandbox's own records
say it executed (never more than one transfer per reference), the statements it wrote, and the
payment exceptions raised for finance."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter, defaultdict

import asyncpg
from rich.console import Console
from rich.table import Table


def _sandbox(base_url: str, method: str, path: str, body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


async def print_providers(console: Console, database_url: str, provider_base_url: str) -> bool:
    """A table per provider; False when the sandbox executed a reference twice."""
    conn = await asyncpg.connect(database_url)
    try:
        states = await conn.fetch("SELECT provider, state, count(*) AS n FROM disbursement.payment_instructions "
                                  "GROUP BY provider, state")
        exceptions = await conn.fetch("SELECT kind, count(*) AS n FROM disbursement.payment_exceptions GROUP BY kind "
                                      "ORDER BY kind")
    finally:
        await conn.close()
    executed = _sandbox(provider_base_url, "GET", "/admin/transfers")["transfers"]
    per_reference = Counter((t["provider"], t["reference"]) for t in executed)
    twice = [ref for ref, n in per_reference.items() if n > 1]
    by_provider: dict[str, Counter] = defaultdict(Counter)
    for row in states:
        by_provider[row["provider"]][row["state"]] += row["n"]
    at_sandbox = Counter(t["provider"] for t in executed)

    table = Table(title="Payments per provider (instructions, and what the sandbox executed)")
    for column in ("provider", "settled", "failed or refused", "in flight", "for finance", "executed at provider"):
        table.add_column(column, justify="left" if column == "provider" else "right")
    for provider in sorted(set(by_provider) | set(at_sandbox)):
        s = by_provider[provider]
        table.add_row(provider, str(s["settled"]), str(s["failed"] + s["refused"]),
                      str(s["sending"] + s["unknown"] + s["pending"]), str(s["unresolved"] + s["mismatch"]),
                      str(at_sandbox[provider]))
    console.print(table)
    written = _sandbox(provider_base_url, "POST", "/admin/statements", {})["statements"]
    directories = sorted({str(path).rsplit("/", 2)[0] for files in written.values() for path in files.values()})
    if directories:
        console.print(f"The sandbox wrote today's statements of {len(written)} providers (CSV, camt.053, MT940) "
                      f"under {directories[0]}")
    if exceptions:
        console.print("Payment exceptions for finance: " + ", ".join(f"{r['kind']} {r['n']}" for r in exceptions))
    if twice:
        console.print(f"[red]PAID TWICE:[/] {twice[:5]}")
        return False
    console.print(f"Never twice: {len(per_reference)} references, each executed once at the sandbox.")
    return True
