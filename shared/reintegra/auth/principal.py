"""Who is making a request, once authenticated: the value every authorisation decision reads."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

VIA_TOKEN = "token"
VIA_PASSWORD = "password"


def _comparable(name: str) -> str:
    # NFKC + casefold is the usual caseless match for identifiers; it can only make more names
    # compare equal, which is the safe direction for a four-eyes check.
    return unicodedata.normalize("NFKC", name).casefold().strip()


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    display_name: str
    roles: frozenset[str]
    upstream_ids: frozenset[str]
    via: str  # how they proved who they are: "token" now; "password" and later "session"

    def has_any_role(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)

    def is_same_person(self, upstream_actor: str) -> bool:
        """Whether ``upstream_actor`` (as upstream systems name people, e.g. the plan's
        ``approved_by`` "caseworker:k.benali") is this user: equal, ignoring case, to the
        username or to one of the upstream ids, or "<anything>:<username>".

        This is the four-eyes check (a reviewer never reviews a plan they approved upstream), so
        it errs towards "same person": spacing and case are ignored."""
        actor = _comparable(upstream_actor or "")
        if not actor:
            return False
        username = _comparable(self.username)
        if actor == username or actor in {_comparable(u) for u in self.upstream_ids}:
            return True
        _, colon, local_name = actor.partition(":")
        return bool(colon) and local_name.strip() == username
