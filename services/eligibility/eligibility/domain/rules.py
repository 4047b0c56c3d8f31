"""Eligibility rules: each one passes, rejects or asks for a person's review, with a reason code (pure).

Every rule's result is kept in the decision, so a person can read why a case was decided as it
was, under which programme version. Outcome: rejected if any rule rejects, else review_required
if any asks for review, else approved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from reintegra.money import Money

from eligibility.domain.age import age_on
from eligibility.domain.fx import PEGS_ONLY, Rates
from eligibility.domain.grant import GrantItem, grant_after, totals_by_currency
from eligibility.domain.programmes import Programme

APPROVED = "approved"
REJECTED = "rejected"
REVIEW_REQUIRED = "review_required"

PASS, REJECT, REVIEW, SKIP = "pass", "reject", "review", "skip"

# What is being judged: a first plan (a new grant), a revision of the approved plan (same
# plan_id), or another plan_id while a grant is open (a replacement).
GRANT, REVISION, REPLACEMENT = "grant", "revision", "replacement"


@dataclass(frozen=True)
class RuleResult:
    rule: str
    outcome: str  # pass | reject | review | skip
    code: str | None = None
    field: str | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        if self.outcome == PASS:  # most rules pass: keep the audit rows small
            return {"rule": self.rule, "outcome": PASS}
        return {"rule": self.rule, "outcome": self.outcome, "code": self.code, "field": self.field,
                "message": self.message}

    def reason(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class Decision:
    outcome: str
    rules: tuple[RuleResult, ...] = ()
    programme_version: str | None = None
    programme_total: Money | None = None  # the whole grant in the programme's currency, when it converts
    ceiling: Money | None = None
    extra_reasons: tuple[dict[str, Any], ...] = field(default=())  # reasons that are not rule results

    @property
    def reasons(self) -> tuple[dict[str, Any], ...]:
        """What upstream and reviewers read: every rule that did not simply pass."""
        return tuple(r.reason() for r in self.rules if r.outcome in (REJECT, REVIEW)) + self.extra_reasons


@dataclass(frozen=True)
class Application:
    """Everything a decision depends on, gathered by the caller."""

    case: Mapping[str, Any]  # the minimised case from intake
    returned: Mapping[str, Any]  # return.completed
    plan: Mapping[str, Any]
    kind: str = GRANT
    released: Mapping[str, GrantItem] = field(default_factory=dict)  # tranches already released
    other_approved_cases: Sequence[str] = ()  # the same person's approved grants in other cases
    current_plan_id: str | None = None  # for a replacement: the plan it would replace


def plan_total(plan: Mapping[str, Any]) -> Money:
    amounts = [Money.parse(c["amount"]["amount"], c["amount"]["currency"]) for c in plan["components"]]
    total = amounts[0]
    for amount in amounts[1:]:
        total = total + amount
    return total


def plan_date(plan: Mapping[str, Any]) -> date:
    """The calendar date of `approved_at` as the caseworker wrote it (RFC 3339 starts with it)."""
    return date.fromisoformat(plan["approved_at"][:10])


def _amount(money: Money) -> str:
    return f"{money.format_amount()} {money.currency}"


class _Judge:
    def __init__(self, app: Application, programme: Programme, rates: Rates) -> None:
        self.app = app
        self.programme = programme
        self.rates = rates
        self.results: list[RuleResult] = []
        self.programme_total: Money | None = None
        self.ceiling: Money | None = None

    def add(self, rule: str, outcome: str, code: str | None = None, field: str | None = None, message: str = "") -> None:
        self.results.append(RuleResult(rule, outcome, code, field, message))

    def check(self, rule: str, ok: bool, code: str, field: str, message: Callable[[], str], *,
              outcome: str = REJECT) -> None:
        """`message` is only built when the rule fails: most rules pass, for every case."""
        if ok:
            self.results.append(RuleResult(rule, PASS))
        else:
            self.add(rule, outcome, code, field, message())

    def converted(self, totals: Mapping[str, int]) -> Money | None:
        result = Money.zero(self.programme.currency)
        for currency, minor in sorted(totals.items()):
            converted = self.rates.convert(Money(minor, currency), self.programme.currency)
            if converted is None:
                return None
            result = result + converted
        return result

    def run(self) -> None:
        app, p = self.app, self.programme
        case, plan = app.case, app.plan
        day = plan_date(plan)
        self.check("programme_open", p.opens_on <= day <= p.closes_on, "programme_closed", "approved_at",
                   lambda: f"programme {p.code} is open from {p.opens_on} to {p.closes_on}; the plan is dated {day}")
        self.check("host_country", case.get("host_country") == p.host_country, "host_country_mismatch",
                   "host_country", lambda: f"programme {p.code} assists returns from {p.host_country}")
        self.check("origin_covered", case.get("origin_country") in p.origin_countries, "origin_not_covered",
                   "origin_country", lambda: f"programme {p.code} does not cover returns to {case.get('origin_country')}")
        if p.return_to_origin_required:
            self.check("return_to_origin", app.returned.get("arrival_country") == case.get("origin_country"),
                       "return_country_mismatch", "arrival_country",
                       lambda: "the return did not end in the beneficiary's country of origin")
        else:
            self.add("return_to_origin", SKIP, message="not required by the programme")
        self._arrival_window(day)
        self._categories()
        self._consistency()
        grant = grant_after(app.released, plan)
        total = self.converted(totals_by_currency(grant))
        cash = self.converted(totals_by_currency(grant, "cash"))
        if total is None or cash is None:
            missing = sorted({i.currency for i in grant} - {p.currency} - set(self.rates.per_eur))
            self.add("exchange_rate", REVIEW, "exchange_rate_missing", "components",
                     f"no rate from {', '.join(missing)} to {p.currency} is loaded: a reviewer must check the plan")
            self.add("ceiling", SKIP, message="amounts cannot be converted")
            self.add("cash_share", SKIP, message="amounts cannot be converted")
        else:
            self.add("exchange_rate", PASS)
            self.programme_total = total
            self._ceiling(total, day)
            self._cash_share(total, cash)
        self._reviews()

    def _arrival_window(self, day: date) -> None:
        arrived = date.fromisoformat(self.app.returned["arrival_date"])
        days = (day - arrived).days
        window = self.programme.arrival_window_days
        if days < 0:
            self.add("arrival_window", REJECT, "plan_before_arrival", "approved_at",
                     "the plan was approved before the beneficiary arrived")
        elif days > window:
            self.add("arrival_window", REJECT, "arrival_window_exceeded", "approved_at",
                     f"the plan was approved {days} days after arrival; the programme allows {window}")
        else:
            self.add("arrival_window", PASS)

    def _categories(self) -> None:
        refused = sorted({c["category"] for c in self.app.plan["components"]} - self.programme.categories)
        self.check("categories", not refused, "category_not_allowed", "components",
                   lambda: f"programme {self.programme.code} does not fund {', '.join(refused)}")

    def _consistency(self) -> None:
        plan = self.app.plan
        problems = []
        if any(c["modality"] == "cash" for c in plan["components"]) and not plan.get("payout"):
            problems.append("a cash component needs a payout")
        if any(c["modality"] == "in_kind" and not c.get("vendor_id") for c in plan["components"]):
            problems.append("an in-kind component needs a vendor")
        self.check("plan_consistent", not problems, "plan_inconsistent", "components", lambda: "; ".join(problems))

    def _ceiling(self, total: Money, day: date) -> None:
        p, case = self.programme, self.app.case
        top_up = p.top_up if p.top_up and set(case.get("vulnerabilities") or ()) & p.top_up_when else None
        born = case.get("date_of_birth")
        if born is None:
            # Without the age, only the higher ceiling can be checked; a person decides the rest.
            ceiling = max(p.adult_ceiling, p.minor_ceiling) + (top_up or Money.zero(p.currency))
            self.ceiling = ceiling
            if ceiling < total:
                self.add("ceiling", REJECT, "plan_over_ceiling", "components",
                         f"the grant totals {_amount(total)}, above every ceiling ({_amount(ceiling)})")
            else:
                self.add("ceiling", REVIEW, "age_unknown", "beneficiary.date_of_birth",
                         "no date of birth: the age ceiling cannot be chosen")
            return
        adult = age_on(date.fromisoformat(born), day) >= p.adult_age
        ceiling = (p.adult_ceiling if adult else p.minor_ceiling) + (top_up or Money.zero(p.currency))
        self.ceiling = ceiling
        who = f"{'adult' if adult else 'minor'} ceiling{' with the top-up' if top_up else ''}"
        self.check("ceiling", not ceiling < total, "plan_over_ceiling", "components",
                   lambda: f"the grant totals {_amount(total)}, above the {who} of {_amount(ceiling)}")

    def _cash_share(self, total: Money, cash: Money) -> None:
        p = self.programme
        # Integer arithmetic: cash × 100 ≤ percent × total, or cash within the fixed allowance.
        within = cash.minor * 100 <= p.cash_max_percent * total.minor or not p.cash_up_to < cash
        self.check("cash_share", within, "cash_share_exceeded", "components",
                   lambda: f"cash is {_amount(cash)} of {_amount(total)}; at most {p.cash_max_percent} % "
                   f"or {_amount(p.cash_up_to)}, whichever is larger")

    def _reviews(self) -> None:
        app, p = self.app, self.programme
        # A child's plan is reviewed whenever it changes: the best-interests determination covered
        # the plan as it was.
        flagged = sorted(set(app.case.get("vulnerabilities") or ()) & p.review_vulnerabilities)
        self.check("vulnerability_review", not flagged, "vulnerability_review", "vulnerabilities",
                   lambda: f"needs a person's review (best-interests determination): {', '.join(flagged)}",
                   outcome=REVIEW)
        if app.kind != GRANT:
            self.add("duplicate_beneficiary", SKIP, message="the grant was already decided")
        else:
            others = sorted(app.other_approved_cases)
            self.check("duplicate_beneficiary", not others, "possible_duplicate_beneficiary", "beneficiary",
                       lambda: f"the same person has an approved grant in case {', '.join(others)}", outcome=REVIEW)
        if app.kind == REPLACEMENT:
            self.add("plan_replacement", REVIEW, "plan_replaced", "plan_id",
                     f"another plan while the grant of plan {app.current_plan_id} is open: a person must decide "
                     "whether it replaces it")


def evaluate(app: Application, programme: Programme | None, rates: Rates = PEGS_ONLY) -> Decision:
    """Judge an application under a programme; `programme` None means the code is not configured."""
    consent = RuleResult("consent", PASS) if app.case.get("consent") else RuleResult(
        "consent", REJECT, "consent_missing", "consent.data_processing", "no consent to data processing")
    if programme is None:
        results = (consent, RuleResult("programme_known", REJECT, "programme_unknown", "program_code",
                                       f"programme {app.case.get('program_code')} is not configured"))
        return Decision(REJECTED, results)
    judge = _Judge(app, programme, rates)
    judge.results.append(consent)
    judge.add("programme_known", PASS)
    judge.run()
    outcomes = {r.outcome for r in judge.results}
    outcome = REJECTED if REJECT in outcomes else REVIEW_REQUIRED if REVIEW in outcomes else APPROVED
    return Decision(outcome, tuple(judge.results), programme.version, judge.programme_total, judge.ceiling)
