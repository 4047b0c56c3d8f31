"""Finance: what finance staff need to close a period.

It builds its own views from the ledger's posting events and the payment statuses (it reads no
other service's tables), imports provider statements and matches them, keeps the exceptions queue
(four eyes on every write-off and re-pay) and the budget reports, and serves the HTTP API and the
web console. What it decides goes back to disbursement as events.
"""
