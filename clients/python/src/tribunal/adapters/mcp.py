"""The gate in front of an MCP client's tool calls (the official MCP Python SDK).

>>> async with ClientSession(read, write) as session:
...     await session.initialize()
...     gated = GatedSession(session, AsyncGate(url, token=token))
...     await gated.list_tools()                 # definitions and annotations reach the gate
...     result = await gated.call_tool("search", {"query": "printer"})

Every `call_tool` is asked about at the gate before the request leaves the client. A call
the gate does not allow never reaches the server: by default `call_tool` returns an error
result (`is_error=True`) whose text tells the model it was refused and not to work around
it, as an agent loop expects from a failing tool; `on_block="raise"` raises
:class:`tribunal.Blocked` instead. An escalation is waited for as the gate is told
(`escalation_wait`); one not approved in time is refused.

The session is one trace at the gate: each allowed call is recorded as an assistant tool
call and its result as a tool message, untrusted content, so later calls are judged with
what the tools returned. `list_tools` answers are recorded too: their descriptions as
untrusted content (read for injected instructions) and the tools as the trace's tool
definitions, with their MCP annotations (`readOnlyHint`, `destructiveHint`...) that
policies read as `input.trace.tools[name].annotations`. Messages of the agent's own
conversation (the user's request) are added with :meth:`GatedSession.record`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List, Literal, Mapping, Optional, Union

from mcp import Client, ClientSession, MCPError
from mcp.types import CallToolResult, ListToolsResult, TextContent

from .._client import AsyncGate, Gate
from .._types import Blocked, Decision

REFUSAL = (
    "The call to {tool} was refused by the Tribunal gate ({why}). Do not retry it and do not "
    "try to reach the same result with other tools or arguments; tell the user it was refused."
)

OnBlock = Literal["result", "raise"]

Session = Union[ClientSession, Client]
"""A session of the SDK: the low-level `ClientSession` or the high-level `Client`."""


def _wire(model: Any) -> Dict[str, Any]:
    """A pydantic model of the SDK as it travels (camelCase names, no unset fields)."""
    if isinstance(model, Mapping):
        return dict(model)
    return dict(model.model_dump(by_alias=True, exclude_none=True, mode="json"))


def tool_definition(tool: Any) -> Dict[str, Any]:
    """An MCP tool (from `list_tools`) as an OpenAI function tool definition, with its MCP
    annotations when it has any."""
    t = _wire(tool)
    function: Dict[str, Any] = {"name": t["name"]}
    if isinstance(t.get("description"), str):
        function["description"] = t["description"]
    if isinstance(t.get("inputSchema"), Mapping):
        function["parameters"] = t["inputSchema"]
    out: Dict[str, Any] = {"type": "function", "function": function}
    if isinstance(t.get("annotations"), Mapping) and t["annotations"]:
        out["annotations"] = t["annotations"]
    return out


def result_text(result: Any) -> str:
    """What a tool returned, as the text recorded in the trace: its text content, else its
    structured content as JSON."""
    r = _wire(result)
    parts = [
        str(c["text"])
        for c in r.get("content") or []
        if isinstance(c, Mapping) and isinstance(c.get("text"), str)
    ]
    if not parts and r.get("structuredContent") is not None:
        parts.append(json.dumps(r["structuredContent"], sort_keys=True))
    return "\n".join(parts)


class GatedSession:
    """An MCP `ClientSession` whose tool calls are asked about at the Tribunal gate.

    `list_tools` and `call_tool` take the SDK's arguments and answer its types; every other
    attribute is the wrapped session's. One gated session follows one conversation
    (`trace_id`, a new id by default): calls after the first send only what is new.
    Works with an :class:`AsyncGate` or a :class:`Gate` (asked off the event loop).
    """

    def __init__(
        self,
        session: Session,
        gate: Union[AsyncGate, Gate],
        *,
        trace_id: Optional[str] = None,
        context: Optional[Mapping[str, Any]] = None,
        on_block: OnBlock = "result",
    ) -> None:
        if on_block not in ("result", "raise"):
            raise ValueError(f"on_block: expected 'result' or 'raise', found {on_block!r}")
        self.session = session
        self.gate = gate
        self.trace_id = trace_id or f"mcp-{gate.new_trace_id()}"
        self.context = context
        self.on_block: OnBlock = on_block
        self.decisions: List[Decision] = []
        """Every decision the gate gave, in order."""
        self.messages: List[Dict[str, Any]] = []
        """The trace held at the gate: the recorded conversation, tool calls and results."""
        self._tools: Dict[str, Dict[str, Any]] = {}
        self._calls = 0

    @property
    def tools(self) -> List[Dict[str, Any]]:
        """The listed tools as the gate has them (OpenAI definitions with annotations)."""
        return list(self._tools.values())

    def record(self, *messages: Mapping[str, Any]) -> None:
        """Adds messages of the agent's conversation (OpenAI chat messages: the user's
        request, the model's text) to the trace, so calls are judged against them."""
        for m in messages:
            if not isinstance(m, Mapping) or "role" not in m:
                raise ValueError(f"record: expected chat messages with a role, found {m!r}")
            self.messages.append(dict(m))

    async def list_tools(self, **kw: Any) -> ListToolsResult:
        """The server's `tools/list` answer, recorded for the gate."""
        listed = await self.session.list_tools(**kw)
        lines = []
        for tool in listed.tools:
            d = tool_definition(tool)
            self._tools[d["function"]["name"]] = d
            lines.append(f"{tool.name}: {tool.description or ''}")
        if lines:
            # Descriptions come from the server: untrusted content, read for injections.
            self.messages.append(
                {
                    "role": "tool",
                    "name": "mcp.tools_list",
                    "tool_call_id": "mcp-tools-list",
                    "content": "\n".join(lines),
                }
            )
        return listed

    async def check(self, name: str, arguments: Optional[Mapping[str, Any]] = None) -> Decision:
        """Asks the gate about a call without making it (nothing is recorded)."""
        return await self._ask({"id": self._next_id(), "name": name, "arguments": dict(arguments or {})})

    async def call_tool(
        self, name: str, arguments: Optional[Dict[str, Any]] = None, *args: Any, **kw: Any
    ) -> CallToolResult:
        """`ClientSession.call_tool`, made only when the gate allows it.

        A refused call returns an error result saying so (`on_block="result"`) or raises
        :class:`tribunal.Blocked` (`on_block="raise"`); the server never sees it."""
        call_id = self._next_id()
        pending = {"id": call_id, "name": name, "arguments": dict(arguments or {})}
        d = await self._ask(pending)
        if not d.allowed:
            if self.on_block == "raise":
                raise Blocked(d)
            why = "; ".join(d.reasons) or d.decision
            return CallToolResult(
                content=[TextContent(type="text", text=REFUSAL.format(tool=name, why=why))],
                is_error=True,
                meta={"tribunal": {"decision": d.decision, "rules": d.rules, "reasons": d.reasons}},
            )
        self.messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(pending["arguments"])},
                    }
                ],
            }
        )
        try:
            result = await self.session.call_tool(name, arguments, *args, **kw)
        except MCPError as e:
            self._result(call_id, name, f"error: {e}")
            raise
        self._result(call_id, name, result_text(result))
        return result

    def _result(self, call_id: str, name: str, text: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": call_id, "name": name, "content": text})

    def _next_id(self) -> str:
        self._calls += 1
        return f"mcp-call-{self._calls}"

    async def _ask(self, pending: Dict[str, Any]) -> Decision:
        kw: Dict[str, Any] = {
            "trace_id": self.trace_id,
            "context": self.context,
            "tools": self.tools or None,
        }
        if isinstance(self.gate, AsyncGate):
            d = await self.gate.check(list(self.messages), pending, **kw)
        else:
            d = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.gate.check(list(self.messages), pending, **kw)  # type: ignore[union-attr]
            )
        self.decisions.append(d)
        return d

    def __getattr__(self, name: str) -> Any:
        if name == "session":
            raise AttributeError(name)
        return getattr(self.session, name)
