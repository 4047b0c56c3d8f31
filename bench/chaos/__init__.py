"""A seeded fault harness for the whole stack (issue 10).

    .venv/bin/python -m bench.chaos --seed 42 --cases 300 --duration-s 120
    make chaos SEED=42 CASES=2000

Starts Postgres, Apache Kafka, the provider sandbox and two instances of each service (each its
own process) under `.reintegra/chaos/<run>/state`, publishes a seeded stream of upstream cases
(bench/chaos/cases.py) while a seeded schedule of faults runs (bench/chaos/faults.py: SIGKILLs,
named crash points, Postgres immediate stops, broker and sandbox restarts, network faults through
bench/chaos/proxy.py, provider misbehaviour, SIGSTOP past the session timeout, instances joining
and leaving, rolling restarts, clock skew), then drains, reads everything back and checks the
invariants (bench/chaos/observe.py). Figures go to stdout and `.reintegra/chaos/<run>/result.json`;
the exit code is 0 only when every invariant holds. The same seed and commit replay the same case
stream and fault schedule (`--plan-only` prints them).
"""
