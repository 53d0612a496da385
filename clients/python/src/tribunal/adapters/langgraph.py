"""The gate in front of a LangGraph agent's tools.

>>> guard = ToolGuard(Gate(url, token=token))
>>> ToolNode(tools, wrap_tool_call=guard.wrap_tool_call, awrap_tool_call=guard.awrap_tool_call)

Each tool call is asked about with the graph state's messages (as OpenAI chat messages)
before it runs. A call the gate does not allow is not run: the model gets a `ToolMessage`
saying it was refused (`on_block="message"`, the default), or :class:`tribunal.Blocked` is
raised (`on_block="raise"`). The conversation's trace id is the run's `thread_id` when it
has one, so calls after the first send only the new messages.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List, Literal, Mapping, Optional, Union

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage, convert_to_openai_messages

from .._client import AsyncGate, Gate
from .._types import Blocked, Decision

REFUSAL = (
    "The call to {tool} was refused by the Tribunal gate ({why}). Do not retry it or work "
    "around it with other tools; tell the user it was refused."
)


def _messages_of(state: Any) -> List[BaseMessage]:
    if isinstance(state, Mapping):
        msgs = state.get("messages", [])
    elif isinstance(state, list):
        msgs = state
    else:
        msgs = getattr(state, "messages", [])
    return [m for m in msgs if isinstance(m, BaseMessage)]


class ToolGuard:
    """`wrap_tool_call` / `awrap_tool_call` for LangGraph's `ToolNode`."""

    def __init__(
        self,
        gate: Union[Gate, AsyncGate],
        *,
        trace_id: Optional[str] = None,
        context: Optional[Mapping[str, Any]] = None,
        on_block: Literal["message", "raise"] = "message",
    ) -> None:
        self.gate = gate
        self.trace_id = trace_id
        self.context = context
        self.on_block = on_block
        self.decisions: List[Decision] = []
        self._default_id = gate.new_trace_id()

    def _ask(self, request: Any) -> "tuple[List[Dict[str, Any]], Dict[str, Any], Optional[str], str]":
        call = request.tool_call
        msgs = _messages_of(request.state)
        # The model's message that made this call is the pending step, not the trace.
        if msgs and isinstance(msgs[-1], AIMessage) and any(
            c.get("id") == call.get("id") for c in msgs[-1].tool_calls
        ):
            msgs = msgs[:-1]
        trace = convert_to_openai_messages(msgs)
        pending = {"id": call.get("id"), "name": call["name"], "arguments": call.get("args", {})}
        tid = self.trace_id
        if tid is None:
            cfg = getattr(getattr(request, "runtime", None), "config", None) or {}
            thread = (cfg.get("configurable") or {}).get("thread_id") if isinstance(cfg, Mapping) else None
            tid = f"langgraph-{thread}" if thread else self._default_id
        return trace, pending, call.get("id"), tid

    def _refused(self, d: Decision, name: str, call_id: Optional[str]) -> ToolMessage:
        if self.on_block == "raise":
            raise Blocked(d)
        why = "; ".join(d.reasons) or d.decision
        return ToolMessage(
            content=REFUSAL.format(tool=name, why=why),
            tool_call_id=call_id or "",
            name=name,
            status="error",
        )

    def wrap_tool_call(self, request: Any, execute: Callable[[Any], Any]) -> Any:
        if isinstance(self.gate, AsyncGate):
            raise TypeError("wrap_tool_call needs a Gate; use awrap_tool_call with an AsyncGate")
        trace, pending, call_id, tid = self._ask(request)
        d = self.gate.check(trace, pending, trace_id=tid, context=self.context)
        self.decisions.append(d)
        if not d.allowed:
            return self._refused(d, pending["name"], call_id)
        return execute(request)

    async def awrap_tool_call(
        self, request: Any, execute: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        trace, pending, call_id, tid = self._ask(request)
        if isinstance(self.gate, AsyncGate):
            d = await self.gate.check(trace, pending, trace_id=tid, context=self.context)
        else:
            d = self.gate.check(trace, pending, trace_id=tid, context=self.context)
        self.decisions.append(d)
        if not d.allowed:
            return self._refused(d, pending["name"], call_id)
        return await execute(request)
