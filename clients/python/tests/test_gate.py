"""`Gate` and `AsyncGate` against a real `tribunal serve`."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List

import httpx
import pytest

from tribunal import AsyncGate, Blocked, Decision, Gate, GateError, GateUnavailable

CHAT = [
    {"role": "system", "content": "You are an operations assistant."},
    {"role": "user", "content": "What is the weather in Paris?"},
]
SEARCH = {"name": "search", "arguments": {"query": "weather Paris"}}
RM = {"name": "shell", "arguments": {"command": "rm -rf /"}}
DELETE = {"name": "delete_user", "arguments": {"user_id": "42"}}


class Recorder:
    """Every gate request and answer status a client made (an httpx event hook)."""

    def __init__(self) -> None:
        self.bodies: List[Dict[str, Any]] = []
        self.statuses: List[int] = []

    def client(self) -> httpx.Client:
        return httpx.Client(
            timeout=30,
            event_hooks={"request": [self._req], "response": [self._resp]},
        )

    def _req(self, r: httpx.Request) -> None:
        if r.url.path.endswith("/gate"):
            self.bodies.append(json.loads(r.content))

    def _resp(self, r: httpx.Response) -> None:
        if r.request.url.path.endswith("/gate"):
            self.statuses.append(r.status_code)


def test_a_harmless_call_is_allowed_and_a_destructive_command_blocked(server: Any) -> None:
    with Gate(server.url, token=server.agent_token) as gate:
        ok = gate.check(CHAT, pending=SEARCH)
        assert isinstance(ok, Decision)
        assert ok.decision == "allow", ok.reasons
        assert ok.allowed and not ok.unavailable
        assert isinstance(ok.decision_id, int)
        assert ok.messages == 2
        assert ok.raise_for_block() is ok

        bad = gate.check(CHAT, pending=RM)
        assert bad.decision == "block", bad
        assert bad.rules, "a block names the rules that fired"
        with pytest.raises(Blocked) as e:
            gate.enforce(CHAT, pending=RM)
        assert e.value.decision.decision == "block"
        assert "block" in str(e.value)


def test_a_growing_conversation_is_sent_as_appends_with_the_held_offset(server: Any) -> None:
    rec = Recorder()
    gate = Gate(server.url, token=server.agent_token, client=rec.client())
    tid = gate.new_trace_id()
    msgs = list(CHAT)
    first = gate.check(msgs, pending=SEARCH, trace_id=tid)
    assert first.allowed and first.messages == 2
    msgs += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{\"query\": \"weather Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny, 21 degrees."},
    ]
    second = gate.check(msgs, pending="It is sunny and 21 degrees in Paris.", trace_id=tid)
    assert second.allowed, second.reasons
    assert second.messages == 4
    assert "trace" in rec.bodies[0] and rec.bodies[0]["trace_id"] == tid
    assert rec.bodies[1]["offset"] == 2
    assert rec.bodies[1]["append"] == msgs[2:]
    assert "trace" not in rec.bodies[1]
    assert rec.statuses == [200, 200]


def test_tool_definitions_travel_with_the_trace_and_new_ones_send_it_whole(server: Any) -> None:
    rec = Recorder()
    gate = Gate(server.url, token=server.agent_token, client=rec.client())
    tid = gate.new_trace_id()
    search = {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}},
              "annotations": {"readOnlyHint": True}}
    wipe = {"type": "function", "function": {"name": "wipe_disk"}, "annotations": {"destructiveHint": True}}
    msgs = list(CHAT)
    assert gate.check(msgs, pending=SEARCH, trace_id=tid, tools=[search]).allowed
    msgs.append({"role": "assistant", "content": "Looking it up."})
    assert gate.check(msgs, pending=SEARCH, trace_id=tid, tools=[search]).allowed
    # A destructive tool listed later: the trace goes whole with it, and its call waits for a person.
    d = gate.check(msgs, pending={"name": "wipe_disk", "arguments": {}}, trace_id=tid, tools=[search, wipe])
    assert d.decision == "escalate" and "c5.destructive_tool" in d.rules, d
    _decide(server, "deny", [])  # settled, so later tests' reviewers see only their own
    first, second, third = rec.bodies
    assert first["trace"] == {"messages": CHAT, "tools": [search]}
    assert "trace" not in second and second["append"] == msgs[2:]
    assert third["trace"] == {"messages": msgs, "tools": [search, wipe]}
    with pytest.raises(ValueError, match="tools"):
        gate.check({"messages": CHAT}, pending=SEARCH, tools=[search])


def test_an_offset_the_gate_does_not_hold_is_answered_by_sending_the_whole_trace(server: Any) -> None:
    rec = Recorder()
    mine = Gate(server.url, token=server.agent_token, client=rec.client())
    other = Gate(server.url, token=server.agent_token)
    tid = mine.new_trace_id()
    assert mine.check(CHAT, pending=SEARCH, trace_id=tid).allowed
    # Another process grows the same trace: the gate now holds 3 messages, not 2.
    grown = CHAT + [{"role": "user", "content": "And in Lyon?"}]
    assert other.check(grown, pending=SEARCH, trace_id=tid).messages == 3
    mine_next = CHAT + [{"role": "user", "content": "And in Nice?"}]
    d = mine.check(mine_next, pending=SEARCH, trace_id=tid)
    assert d.allowed and d.messages == 3
    assert rec.statuses == [200, 409, 200]
    assert rec.bodies[1]["offset"] == 2 and "append" in rec.bodies[1]
    assert rec.bodies[2]["trace"] == mine_next
    # Held again: the next call appends from the count of the whole trace.
    more = mine_next + [{"role": "user", "content": "Thanks."}]
    assert mine.check(more, pending=SEARCH, trace_id=tid).messages == 4
    assert rec.bodies[3]["offset"] == 3 and rec.statuses[3] == 200


class Failing(BaseHTTPRequestHandler):
    hits = 0

    def do_POST(self) -> None:  # noqa: N802
        type(self).hits += 1
        body = b'{"error": {"code": "store_unavailable", "message": "the store did not answer"}}'
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def failing() -> Iterator[str]:
    Failing.hits = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_gate_answering_5xx_is_retried_then_the_step_blocked(failing: str) -> None:
    gate = Gate(failing, token="t", retries=2, backoff=0.01)
    d = gate.check(CHAT, pending=SEARCH)
    assert Failing.hits == 3
    assert d.decision == "block" and d.unavailable
    assert "store_unavailable" in d.reasons[0]
    with pytest.raises(Blocked):
        d.raise_for_block()
    with pytest.raises(GateUnavailable):
        Gate(failing, retries=0, on_unavailable="raise").check(CHAT, pending=SEARCH)
    opened = Gate(failing, retries=0, on_unavailable="allow").check(CHAT, pending=SEARCH)
    assert opened.decision == "allow" and opened.unavailable


def test_an_unreachable_gate_blocks() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    d = Gate(f"http://127.0.0.1:{port}", retries=1, backoff=0.01, timeout=2).check(CHAT, pending=SEARCH)
    assert d.decision == "block" and d.unavailable
    assert "Connect" in d.reasons[0]


def test_a_request_the_gate_refuses_raises_with_its_code(server: Any) -> None:
    with pytest.raises(GateError) as e:
        Gate(server.url, token="not-a-token").check(CHAT, pending=SEARCH)
    assert e.value.status == 401 and e.value.code == "unauthenticated"
    with pytest.raises(GateError) as e:
        Gate(server.url, token=server.agent_token).check({"nothing": "here"}, pending=SEARCH)
    assert e.value.status == 400 and e.value.code == "invalid_trace"


def _decide(server: Any, answer: str, seen: List[str]) -> None:
    """A reviewer: waits for a pending escalation and answers it."""
    h = {"authorization": f"Bearer {server.reviewer_token}"}
    for _ in range(200):
        r = httpx.get(f"{server.url}/api/v1/escalations?status=pending", headers=h)
        r.raise_for_status()
        items = r.json()["escalations"]
        if items:
            for it in items:
                seen.append(it["id"])
                httpx.post(
                    f"{server.url}/api/v1/escalations/{it['id']}/decision",
                    headers=h,
                    json={"decision": answer},
                ).raise_for_status()
            return
        time.sleep(0.05)


def test_an_escalation_is_waited_for_until_a_reviewer_approves(server: Any) -> None:
    seen: List[str] = []
    reviewer = threading.Thread(target=_decide, args=(server, "approve", seen))
    reviewer.start()
    gate = Gate(server.url, token=server.agent_token, escalation_wait=20, poll_interval=0.1)
    d = gate.check(CHAT, pending=DELETE)
    reviewer.join()
    assert d.decision == "allow", d
    assert d.escalation is not None and d.escalation.status == "approved"
    assert d.escalation.id in seen


def test_an_escalation_returned_at_once_is_polled_until_denied(server: Any) -> None:
    gate = Gate(server.url, token=server.agent_token, poll_interval=0.1)
    d = gate.check(CHAT, pending=DELETE)
    assert d.decision == "escalate" and not d.allowed
    assert d.escalation is not None and d.escalation.status == "pending"
    # Nobody decided yet: waiting a moment changes nothing, and the step is not allowed.
    assert gate.wait(d, 0.2).decision == "escalate"
    seen: List[str] = []
    _decide(server, "deny", seen)
    assert d.escalation.id in seen
    after = gate.wait(d, 10)
    assert after.decision == "block" and after.escalation is not None
    assert after.escalation.status == "denied"


def test_the_async_gate_allows_blocks_and_appends(server: Any) -> None:
    async def run() -> List[Decision]:
        async with AsyncGate(server.url, token=server.agent_token) as gate:
            tid = gate.new_trace_id()
            a = await gate.check(CHAT, pending=SEARCH, trace_id=tid)
            b = await gate.check(CHAT + [{"role": "user", "content": "Now clean the disk."}], pending=RM, trace_id=tid)
            try:
                await gate.enforce(CHAT, pending=RM)
            except Blocked as e:
                return [a, b, e.decision]
            raise AssertionError("enforce did not raise")

    a, b, c = asyncio.run(run())
    assert a.decision == "allow" and a.messages == 2
    assert b.decision == "block" and b.messages == 3
    assert c.decision == "block"
