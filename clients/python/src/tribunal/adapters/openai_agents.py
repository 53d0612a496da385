"""The gate in front of an OpenAI Agents SDK agent's tools.

>>> guard = TribunalGuard(AsyncGate(url, token=token))
>>> agent = Agent(name="ops", tools=[function_tool(shell, tool_input_guardrails=[guard.guardrail])])
>>> await Runner.run(agent, "tidy up", hooks=guard.hooks)

`guard.hooks` records the conversation the model saw (its input items and its answer);
`guard.guardrail` asks the gate about each tool call with that conversation before the tool
runs. A call the gate does not allow is not run: the model is told it was refused
(`on_block="reject"`, the default) or the run stops with the SDK's
`ToolInputGuardrailTripwireTriggered` (`on_block="raise"`).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Union

from agents import RunHooks
from agents.tool_guardrails import (
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
)

from .._client import AsyncGate, Gate
from .._types import Decision

REFUSAL = (
    "The call to {tool} was refused by the Tribunal gate ({why}). Do not retry it or work "
    "around it with other tools; tell the user it was refused."
)


def _plain(item: Any) -> Dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    dump = getattr(item, "model_dump", None)
    if callable(dump):
        return dict(dump(exclude_unset=True, mode="json"))
    return {"type": "unknown", "value": str(item)}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            p = _plain(p)
            t = p.get("text") or p.get("refusal")
            if isinstance(t, str):
                parts.append(t)
        return "\n".join(parts)
    return "" if content is None else str(content)


def chat_messages(items: Sequence[Any]) -> List[Dict[str, Any]]:
    """Responses API / Agents SDK items as OpenAI chat messages: `message` items by role,
    `function_call` as an assistant tool call, `function_call_output` as a tool message;
    reasoning and other items are left out."""
    out: List[Dict[str, Any]] = []
    for raw in items:
        it = _plain(raw)
        kind = it.get("type", "message" if "role" in it else None)
        if kind == "message":
            role = it.get("role", "user")
            if role == "developer":
                role = "system"
            out.append({"role": role, "content": _text(it.get("content"))})
        elif kind == "function_call":
            out.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": it.get("call_id") or it.get("id"),
                            "type": "function",
                            "function": {
                                "name": it.get("name"),
                                "arguments": it.get("arguments") or "{}",
                            },
                        }
                    ],
                }
            )
        elif kind == "function_call_output":
            output = it.get("output")
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": it.get("call_id"),
                    "content": output if isinstance(output, str) else _text(output),
                }
            )
    return out


class _Recorder(RunHooks[Any]):
    def __init__(self, guard: "TribunalGuard") -> None:
        self._guard = guard

    async def on_llm_start(self, context: Any, agent: Any, system_prompt: Any, input_items: Any) -> None:
        items: List[Any] = []
        if system_prompt:
            items.append({"type": "message", "role": "system", "content": system_prompt})
        items.extend(input_items or [])
        self._guard._seen = items
        self._guard._said = []

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        self._guard._said = list(getattr(response, "output", []) or [])


class TribunalGuard:
    """A tool input guardrail and the run hooks that give it the conversation.

    One guard follows one conversation (`trace_id`, a new id by default): calls after the
    first send only the new messages. Works with a :class:`Gate` or an :class:`AsyncGate`.
    """

    def __init__(
        self,
        gate: Union[Gate, AsyncGate],
        *,
        trace_id: Optional[str] = None,
        context: Optional[Mapping[str, Any]] = None,
        on_block: Literal["reject", "raise"] = "reject",
    ) -> None:
        self.gate = gate
        self.trace_id = trace_id or gate.new_trace_id()
        self.context = context
        self.on_block = on_block
        self.decisions: List[Decision] = []
        self._seen: List[Any] = []
        self._said: List[Any] = []
        self.hooks: RunHooks[Any] = _Recorder(self)
        self.guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(
            guardrail_function=self._check, name="tribunal_gate"
        )

    def conversation(self) -> List[Dict[str, Any]]:
        """The conversation so far as chat messages: what the model was given and the text
        it answered (its tool calls are the pending steps, asked about one by one)."""
        said = [i for i in self._said if _plain(i).get("type") == "message"]
        return chat_messages(list(self._seen) + said)

    async def _check(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        ctx = data.context
        try:
            arguments: Any = json.loads(ctx.tool_arguments or "{}")
        except ValueError:
            arguments = ctx.tool_arguments
        pending = {"id": ctx.tool_call_id, "name": ctx.tool_name, "arguments": arguments}
        ask = self.gate.check(
            self.conversation(), pending, trace_id=self.trace_id, context=self.context
        )
        decision = await ask if isinstance(self.gate, AsyncGate) else ask  # type: ignore[misc]
        self.decisions.append(decision)
        if decision.allowed:
            return ToolGuardrailFunctionOutput.allow(output_info=decision)
        if self.on_block == "raise":
            return ToolGuardrailFunctionOutput.raise_exception(output_info=decision)
        why = "; ".join(decision.reasons) or decision.decision
        return ToolGuardrailFunctionOutput.reject_content(
            REFUSAL.format(tool=ctx.tool_name, why=why), output_info=decision
        )
