"""Client of the Tribunal runtime gate (`tribunal serve`): ask before every agent step.

>>> from tribunal import Gate
>>> gate = Gate("http://127.0.0.1:7878", token=os.environ["TRIBUNAL_TOKEN"])
>>> decision = gate.check(messages, pending={"name": "shell", "arguments": {"command": "ls"}})
>>> decision.decision            # "allow", "block" or "escalate"

An agent already traced with OpenTelemetry (spans exported to the server's `/v1/traces`)
sends only the step: `gate.check(pending=tool_call)` inside its span names the current trace.

Adapters: :mod:`tribunal.adapters.openai_agents` (a tool input guardrail for the OpenAI
Agents SDK), :mod:`tribunal.adapters.langgraph` (`ToolNode(wrap_tool_call=...)`) and
:mod:`tribunal.adapters.mcp` (`GatedSession`, an MCP client session whose tool calls are
gated).
"""

from ._client import AsyncGate, Gate, Messages, otel_trace_id
from ._types import Blocked, Decision, Escalation, GateError, GateUnavailable, TribunalError

__all__ = [
    "AsyncGate",
    "Blocked",
    "Decision",
    "Escalation",
    "Gate",
    "GateError",
    "GateUnavailable",
    "Messages",
    "TribunalError",
    "otel_trace_id",
]
__version__ = "0.1.0"
