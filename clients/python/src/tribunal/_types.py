"""The gate's answer and the errors the client raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Mapping, Optional

Verdict = Literal["allow", "block", "escalate"]


@dataclass(frozen=True)
class Escalation:
    """A review item the gate queued for an `escalate` decision."""

    id: Optional[str]
    status: str
    """`pending`, `approved`, `denied`, `expired` or `not_queued`."""
    deadline_ms: Optional[int] = None
    poll: Optional[str] = None

    @classmethod
    def from_json(cls, v: Mapping[str, Any]) -> "Escalation":
        return cls(
            id=v.get("id"),
            status=str(v.get("status", "pending")),
            deadline_ms=v.get("deadline_ms"),
            poll=v.get("poll"),
        )


@dataclass(frozen=True)
class Decision:
    """What the gate decided about the pending step.

    `decision` is final: an escalation the client waited for carries the reviewer's
    outcome, and one still pending when the client stopped waiting is `block` with
    `escalation.status == "pending"` (the gate never silently allows).
    """

    decision: Verdict
    reasons: List[str] = field(default_factory=list)
    violations: List[Dict[str, Any]] = field(default_factory=list)
    evidence: List[str] = field(default_factory=list)
    scores: Dict[str, Any] = field(default_factory=dict)
    decision_id: Optional[int] = None
    trace_id: Optional[str] = None
    messages: Optional[int] = None
    """How many messages the gate holds for the trace (the next append's offset)."""
    policy_version: Optional[str] = None
    escalation: Optional[Escalation] = None
    unavailable: bool = False
    """True when the gate could not be asked and the client's fail mode decided."""
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @property
    def rules(self) -> List[str]:
        return [str(v.get("rule")) for v in self.violations if v.get("rule")]

    def message(self) -> str:
        """A sentence for the agent (or a person) saying what was decided and why."""
        why = "; ".join(self.reasons) if self.reasons else "no reason given"
        if self.unavailable:
            return f"The Tribunal gate could not be reached, so the step was {self.decision}ed: {why}"
        return f"The Tribunal gate decided {self.decision}: {why}"

    def raise_for_block(self) -> "Decision":
        """Returns self when allowed; raises :class:`Blocked` otherwise."""
        if not self.allowed:
            raise Blocked(self)
        return self

    @classmethod
    def from_json(cls, v: Mapping[str, Any]) -> "Decision":
        d = v.get("decision")
        if d not in ("allow", "block", "escalate"):
            raise GateError(
                "invalid_answer", f"decision: expected allow, block or escalate, found {d!r}"
            )
        esc = v.get("escalation")
        return cls(
            decision=d,
            reasons=[str(r) for r in v.get("reasons") or []],
            violations=list(v.get("violations") or []),
            evidence=[str(e) for e in v.get("evidence") or []],
            scores=dict(v.get("scores") or {}),
            decision_id=v.get("decision_id"),
            trace_id=v.get("trace_id"),
            messages=v.get("messages"),
            policy_version=v.get("policy_version"),
            escalation=Escalation.from_json(esc) if isinstance(esc, Mapping) else None,
            raw=dict(v),
        )


class TribunalError(Exception):
    """Base class of this package's errors."""


class Blocked(TribunalError):
    """The gate did not allow the step (blocked, escalated and not approved, or the gate
    could not be reached and the client fails closed)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.message())
        self.decision = decision


class GateError(TribunalError):
    """The gate refused the request itself (4xx): the request is wrong, not the step.

    `code` is the server's error code (`invalid_trace`, `unauthenticated`, ...)."""

    def __init__(self, code: str, message: str, status: Optional[int] = None) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.code = code
        self.status = status
        self.detail = message


class GateUnavailable(TribunalError):
    """The gate could not be asked (connection failure, timeout, 5xx) after every retry,
    and the client was told to raise rather than decide (`on_unavailable="raise"`)."""
