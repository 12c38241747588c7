"""Property-based tests of the scorer's HTTP contract: schemathesis, every check.

Runs schemathesis's engine in-process (what its CLI runs: the examples, coverage,
fuzzing and stateful phases) against a live URL, with a bounded number of examples per
operation and a fixed seed, and returns what was sent and what failed.
(`schemathesis.pytest.from_fixture` fails on pytest 9.2, so no pytest plugin here.)

One rule cannot be written in a JSON Schema: an event time more than the configured
skew ahead of the server clock is refused (422). A ``positive_data_acceptance`` failure
whose answer is that 422 is waived (and listed); any other is a failure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ContractRun:
    """Requests sent (by status), failed checks and engine errors."""

    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    checks: Counter = field(default_factory=Counter)
    waived: list[str] = field(default_factory=list)
    sent: Counter = field(default_factory=Counter)  # requests by (phase, operation)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def requests_in(self, phase: str) -> int:
        """Requests sent in ``phase`` (``examples``, ``coverage``, ``fuzzing``, ``stateful``)."""
        return sum(n for (p, _), n in self.sent.items() if p == phase)

    def operations_in(self, phase: str) -> set[str]:
        """The operations (``POST /score``) that ``phase`` sent requests to."""
        return {label for (p, label), n in self.sent.items() if p == phase and n}


def run_schemathesis(base_url: str, max_examples: int = 25) -> ContractRun:
    """Every schemathesis check on every operation of ``base_url``/openapi.json."""
    import schemathesis  # noqa: PLC0415
    from schemathesis import engine  # noqa: PLC0415
    from schemathesis.engine import Status, events  # noqa: PLC0415

    config = schemathesis.Config.from_dict(
        {
            "seed": 20261129,
            "generation": {"max-examples": max_examples, "deterministic": True, "database": "none"},
            "checks": {"max_response_time": 10},  # + the 14 built-in checks, all on
            "phases": {"stateful": {"max-steps": 20}},
            "request-timeout": 30,
        }
    )
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    run = ContractRun()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for interaction in event.recorder.interactions.values():
                response = interaction.response
                run.statuses[response.status_code if response else None] += 1
                run.sent[str(event.phase), event.recorder.label] += 1
            for case_id, nodes in event.recorder.checks.items():
                interaction = event.recorder.interactions.get(case_id)
                response = interaction.response if interaction else None
                for node in nodes:
                    run.checks[node.name] += 1
                    if node.status == Status.FAILURE and node.failure_info is not None:
                        failure = node.failure_info.failure
                        if _clock_rule(node.name, response):
                            run.waived.append(node.failure_info.code_sample)
                            continue
                        run.failures.append(
                            f"{event.recorder.label}: {failure.code} {failure.title} "
                            f"({node.name})\n{node.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            run.errors.append(f"{getattr(event, 'label', '')}: {getattr(event, 'info', event)!s}")
    return run


def _clock_rule(check: str, response: object) -> bool:
    """A schema-valid request refused only for an event time ahead of the server clock."""
    return (
        check == "positive_data_acceptance"
        and getattr(response, "status_code", None) == 422  # noqa: PLR2004
        and b"ahead of the server clock" in (getattr(response, "content", b"") or b"")
    )
