"""The tool input guardrail in a real OpenAI Agents SDK run, with the SDK's scripted model
(no model server, no network)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Dict, List

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

import httpx
import pytest
from agents import Agent, Runner, ToolInputGuardrailTripwireTriggered, function_tool, set_tracing_disabled
from agents.testing import ScriptedModel, assistant_message, function_call

from tribunal import AsyncGate
from tribunal.adapters.openai_agents import TribunalGuard, chat_messages

set_tracing_disabled(True)


def make_agent(guard: TribunalGuard, model: ScriptedModel, ran: List[str]) -> Agent[Any]:
    @function_tool(tool_input_guardrails=[guard.guardrail])
    def search(query: str) -> str:
        """Searches the web."""
        ran.append(f"search:{query}")
        return "Sunny, 21 degrees."

    @function_tool(tool_input_guardrails=[guard.guardrail])
    def shell(command: str) -> str:
        """Runs a shell command."""
        ran.append(f"shell:{command}")
        return "done"

    return Agent(name="ops", instructions="You are an operations assistant.", model=model, tools=[search, shell])


def test_the_guardrail_lets_a_harmless_call_run_and_refuses_a_destructive_one(server: Any) -> None:
    bodies: List[Dict[str, Any]] = []

    async def record(r: httpx.Request) -> None:
        bodies.append(json.loads(r.content))

    model = ScriptedModel(
        [
            [function_call("search", {"query": "weather Paris"}, call_id="c1")],
            [function_call("shell", {"command": "rm -rf /"}, call_id="c2")],
            [assistant_message("I was not allowed to clean the disk.")],
        ]
    )
    ran: List[str] = []

    async def run() -> Any:
        http = httpx.AsyncClient(timeout=30, event_hooks={"request": [record]})
        gate = AsyncGate(server.url, token=server.agent_token, client=http)
        guard = TribunalGuard(gate)
        result = await Runner.run(make_agent(guard, model, ran), "Check the weather, then wipe the disk.", hooks=guard.hooks)
        await http.aclose()
        return guard, result

    guard, result = asyncio.run(run())
    assert ran == ["search:weather Paris"], "the refused command never ran"
    assert [d.decision for d in guard.decisions] == ["allow", "block"]
    assert result.final_output == "I was not allowed to clean the disk."
    # The model was told the call was refused, in place of the tool's result.
    last_input = model.last_call.input
    outputs = [i for i in last_input if isinstance(i, dict) and i.get("type") == "function_call_output"]
    refusal = [o["output"] for o in outputs if o.get("call_id") == "c2"]
    assert refusal and "refused by the Tribunal gate" in refusal[0] and "Do not retry" in refusal[0]
    # The second question sent only what the first had not: the call and its result.
    assert "trace" in bodies[0] and bodies[0]["trace"][1] == {"role": "user", "content": "Check the weather, then wipe the disk."}
    assert bodies[1]["offset"] == guard.decisions[0].messages
    assert [m["role"] for m in bodies[1]["append"]] == ["assistant", "tool"]
    assert bodies[1]["append"][1]["content"] == "Sunny, 21 degrees."
    assert bodies[1]["pending"]["name"] == "shell"


def test_raise_mode_stops_the_run(server: Any) -> None:
    model = ScriptedModel([[function_call("shell", {"command": "rm -rf /"}, call_id="c1")]])
    ran: List[str] = []

    async def run() -> None:
        async with AsyncGate(server.url, token=server.agent_token) as gate:
            guard = TribunalGuard(gate, on_block="raise")
            await Runner.run(make_agent(guard, model, ran), "Wipe the disk.", hooks=guard.hooks)

    with pytest.raises(ToolInputGuardrailTripwireTriggered) as e:
        asyncio.run(run())
    assert ran == []
    assert e.value.output.output_info.decision == "block"


def test_responses_items_become_chat_messages() -> None:
    items = [
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "reasoning", "id": "r1", "summary": []},
        {"type": "function_call", "call_id": "c1", "name": "search", "arguments": "{\"q\": 1}"},
        {"type": "function_call_output", "call_id": "c1", "output": "found"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]},
    ]
    assert chat_messages(items) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{\"q\": 1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "found"},
        {"role": "assistant", "content": "done"},
    ]
