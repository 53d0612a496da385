"""`ToolNode(wrap_tool_call=...)` in a real LangGraph agent loop, with a scripted chat
model class (no model server, no network)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, Iterator, List, Optional

import httpx
import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from tribunal import AsyncGate, Blocked, Gate
from tribunal.adapters.langgraph import ToolGuard


class Scripted(BaseChatModel):
    """Answers with the next scripted message, whatever it is asked."""

    script: List[AIMessage]
    seen: List[List[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kw: Any) -> "Scripted":
        return self

    def _generate(
        self,
        messages: List[BaseMessage],
        stop: Optional[List[str]] = None,
        run_manager: Optional[CallbackManagerForLLMRun] = None,
        **kw: Any,
    ) -> ChatResult:
        self.seen.append(list(messages))
        if not self.script:
            raise AssertionError("the scripted model was called more often than scripted")
        return ChatResult(generations=[ChatGeneration(message=self.script.pop(0))])


ran: List[str] = []


@tool
def search(query: str) -> str:
    """Searches the web."""
    ran.append(f"search:{query}")
    return "Sunny, 21 degrees."


@tool
def shell(command: str) -> str:
    """Runs a shell command."""
    ran.append(f"shell:{command}")
    return "done"


def script() -> List[AIMessage]:
    return [
        AIMessage(content="", tool_calls=[{"name": "search", "args": {"query": "weather Paris"}, "id": "c1"}]),
        AIMessage(content="", tool_calls=[{"name": "shell", "args": {"command": "rm -rf /"}, "id": "c2"}]),
        AIMessage(content="I was not allowed to clean the disk."),
    ]


def graph(model: Scripted, node: ToolNode) -> Any:
    def agent(state: MessagesState) -> Dict[str, Any]:
        return {"messages": [model.bind_tools([search, shell]).invoke(state["messages"])]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_node("tools", node)
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", tools_condition)
    g.add_edge("tools", "agent")
    return g.compile()


START_MESSAGES = [
    SystemMessage("You are an operations assistant."),
    HumanMessage("Check the weather, then wipe the disk."),
]


@pytest.fixture(autouse=True)
def clear() -> Iterator[None]:
    ran.clear()
    yield


def test_wrap_tool_call_runs_a_harmless_call_and_refuses_a_destructive_one(server: Any) -> None:
    bodies: List[Dict[str, Any]] = []
    http = httpx.Client(timeout=30, event_hooks={"request": [lambda r: bodies.append(json.loads(r.content))]})
    guard = ToolGuard(Gate(server.url, token=server.agent_token, client=http))
    model = Scripted(script=script(), seen=[])
    app = graph(model, ToolNode([search, shell], wrap_tool_call=guard.wrap_tool_call))
    out = app.invoke({"messages": list(START_MESSAGES)}, {"configurable": {"thread_id": "t-sync"}})
    assert ran == ["search:weather Paris"], "the refused command never ran"
    assert [d.decision for d in guard.decisions] == ["allow", "block"]
    refused = [m for m in out["messages"] if isinstance(m, ToolMessage) and m.tool_call_id == "c2"]
    assert refused and "refused by the Tribunal gate" in str(refused[0].content)
    assert out["messages"][-1].content == "I was not allowed to clean the disk."
    # One trace per thread; the second question appends the call and its result.
    assert bodies[0]["trace_id"] == "langgraph-t-sync" and len(bodies[0]["trace"]) == 2
    assert bodies[1]["offset"] == 2
    assert [m["role"] for m in bodies[1]["append"]] == ["assistant", "tool"]
    assert bodies[1]["pending"] == {"id": "c2", "name": "shell", "arguments": {"command": "rm -rf /"}}


def test_awrap_tool_call_with_the_async_gate_and_raise_mode(server: Any) -> None:
    async def run() -> None:
        async with AsyncGate(server.url, token=server.agent_token) as gate:
            guard = ToolGuard(gate, on_block="raise")
            model = Scripted(script=script()[1:], seen=[])
            node = ToolNode([search, shell], awrap_tool_call=guard.awrap_tool_call, handle_tool_errors=False)
            await graph(model, node).ainvoke({"messages": list(START_MESSAGES)})

    with pytest.raises(Blocked) as e:
        asyncio.run(run())
    assert ran == []
    assert e.value.decision.decision == "block"
