"""`Gate` and `AsyncGate`: ask a running `tribunal serve` about the agent's next step.

Both keep, per trace id, what the gate already holds, so a growing conversation is sent as
an `append` of its new messages (with the `offset` the gate expects) and sent whole again
when the gate answers `409` (it no longer holds the trace, or holds a different count).
Connection failures, timeouts, `429` and `5xx` answers are retried with exponential
backoff; when every try fails the client decides by its fail mode: `block` by default.

A conversation the gate already receives over OpenTelemetry (spans exported to the server's
`/v1/traces`) need not be sent again: `check(pending=...)` without messages names the
current OpenTelemetry trace (or `trace=` names one), and the gate judges the step with the
spans it holds. The span processors are flushed first so the finished spans are there.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Union

import httpx

from ._types import Decision, Escalation, GateError, GateUnavailable

Messages = Union[Sequence[Mapping[str, Any]], Mapping[str, Any]]
"""A trace: a list of messages (OpenAI chat, Anthropic, Responses API items), or any trace
document the gate reads."""

OtelTrace = Any
"""An OpenTelemetry trace the gate received over OTLP: its id (32 hexadecimal digits or an
int), a W3C `traceparent` value, or a span or span context of it."""

_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_TRACEPARENT = re.compile(r"^[0-9a-fA-F]{2}-([0-9a-fA-F]{32})-[0-9a-fA-F]{16}-[0-9a-fA-F]{2}")


def otel_trace_id(trace: OtelTrace = None) -> str:
    """The OpenTelemetry trace id (32 lowercase hex digits) that `trace` names, or of the
    current span when `trace` is None. Raises ValueError when there is none."""
    if trace is None:
        try:
            from opentelemetry import trace as otel
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ValueError(
                "no messages and no trace: naming the current OpenTelemetry trace needs "
                "opentelemetry-api (pip install 'tribunal-gate[otel]')"
            ) from e
        trace = otel.get_current_span().get_span_context()
    ctx = trace.get_span_context() if hasattr(trace, "get_span_context") else trace
    if hasattr(ctx, "trace_id") and not isinstance(ctx, (str, int)):
        if not getattr(ctx, "is_valid", True) or not ctx.trace_id:
            raise ValueError(
                "no messages and no valid OpenTelemetry span is current: send the messages, "
                "or call inside a span, or name the trace with trace="
            )
        return format(ctx.trace_id, "032x")
    if isinstance(trace, bool):
        raise ValueError("trace: expected a trace id, a traceparent or a span, found a bool")
    if isinstance(trace, int):
        if not 0 < trace < 2**128:
            raise ValueError(f"trace: {trace} is not a valid OpenTelemetry trace id")
        return format(trace, "032x")
    if isinstance(trace, str):
        t = trace.strip()
        if _HEX32.match(t) and set(t) != {"0"}:
            return t.lower()
        m = _TRACEPARENT.match(t)
        if m and set(m.group(1)) != {"0"}:
            return m.group(1).lower()
    raise ValueError(
        f"trace: expected 32 hex digits, a W3C traceparent (00-<trace id>-<span id>-<flags>) "
        f"or an OpenTelemetry span, found {trace!r}"
    )


def _flush_otel(timeout_ms: int) -> None:
    """Exports the spans that ended so far (the global tracer provider's processors), so the
    gate has them; nothing when OpenTelemetry's SDK is not in use."""
    try:
        from opentelemetry import trace as otel
    except ImportError:  # pragma: no cover - depends on the environment
        return
    flush = getattr(otel.get_tracer_provider(), "force_flush", None)
    if callable(flush):
        flush(timeout_ms)

FailMode = Literal["block", "allow", "raise"]

GATE_PATH = "/api/v1/gate"
ESCALATION_PATH = "/api/v1/escalations/"


def _canon(m: Any) -> str:
    return json.dumps(m, sort_keys=True, separators=(",", ":"), default=str)


@dataclass
class _Held:
    """What the gate holds of one trace: the raw messages sent (canonical JSON) and the
    number of messages the gate counted (the next append's offset)."""

    sent: List[str] = field(default_factory=list)
    count: int = 0
    tools: Optional[str] = None
    """The tool definitions the gate holds with the trace (canonical JSON), if any."""


@dataclass
class _Plan:
    body: Dict[str, Any]
    raw: List[str]
    appended: bool
    tools: Optional[str] = None


@dataclass
class _Outcome:
    """One HTTP exchange's result: an answer, a conflict (resend whole), or a failure."""

    answer: Optional[Dict[str, Any]] = None
    conflict: bool = False
    failure: Optional[str] = None


class _Core:
    """Request building and answer reading shared by the sync and async clients."""

    def __init__(
        self,
        url: str,
        token: Optional[str],
        timeout: float,
        retries: int,
        backoff: float,
        max_backoff: float,
        on_unavailable: FailMode,
        escalation_wait: float,
        poll_interval: float,
        context: Optional[Mapping[str, Any]],
        format: Optional[str],
    ) -> None:
        if on_unavailable not in ("block", "allow", "raise"):
            raise ValueError(
                f"on_unavailable: expected 'block', 'allow' or 'raise', found {on_unavailable!r}"
            )
        if retries < 0:
            raise ValueError("retries: expected a number >= 0")
        self.url = url.rstrip("/")
        self.headers = {"content-type": "application/json", "accept": "application/json"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on_unavailable: FailMode = on_unavailable
        self.escalation_wait = escalation_wait
        self.poll_interval = poll_interval
        self.context = dict(context) if context else None
        self.format = format
        self.held: Dict[str, _Held] = {}

    def plan(
        self,
        messages: Optional[Messages],
        pending: Any,
        trace_id: Optional[str],
        context: Optional[Mapping[str, Any]],
        explain: bool,
        format: Optional[str],
        whole: bool,
        otlp: Optional[str] = None,
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
    ) -> _Plan:
        body: Dict[str, Any] = {}
        if pending is not None:
            body["pending"] = pending
        ctx = context if context is not None else self.context
        if ctx:
            body["context"] = dict(ctx)
        if explain:
            body["explain"] = True
        fmt = format or self.format
        if fmt:
            body["format"] = fmt
        if self.escalation_wait > 0:
            # The server waits for a reviewer up to its own deadline; the rest is polled.
            body["wait_ms"] = int(min(self.escalation_wait, max(self.timeout - 1.0, 0.0)) * 1000)
        if tools is not None and not isinstance(messages, Sequence):
            raise ValueError(
                "tools: only with a list of messages (a trace document carries its own tools, "
                "and a trace received over OpenTelemetry has its spans' tools)"
            )
        if messages is None:
            # The trace is the one the gate received over OTLP.
            body.pop("format", None)
            body["otlp_trace_id"] = otlp
            return _Plan(body, [], False)
        if isinstance(messages, Mapping):
            # A trace document: always sent whole.
            body["trace"] = dict(messages)
            if trace_id:
                body["trace_id"] = trace_id
            return _Plan(body, [], False)
        raw = [_canon(m) for m in messages]
        defs = [dict(t) for t in tools] if tools else None
        canon_tools = _canon(defs) if defs else None
        held = self.held.get(trace_id) if trace_id else None
        if (
            not whole
            and held is not None
            and held.tools == canon_tools
            and len(raw) >= len(held.sent)
            and raw[: len(held.sent)] == held.sent
        ):
            body["trace_id"] = trace_id
            body["offset"] = held.count
            body["append"] = list(messages[len(held.sent) :])
            return _Plan(body, raw, True, canon_tools)
        # Tool definitions travel with the whole trace: new ones send it again.
        body["trace"] = {"messages": list(messages), "tools": defs} if defs else list(messages)
        if trace_id:
            body["trace_id"] = trace_id
        return _Plan(body, raw, False, canon_tools)

    def remember(self, trace_id: Optional[str], plan: _Plan, d: Decision) -> None:
        if trace_id and plan.raw and d.messages is not None:
            self.held[trace_id] = _Held(sent=plan.raw, count=int(d.messages), tools=plan.tools)

    def read(self, r: httpx.Response) -> _Outcome:
        """Interprets an answer: `None` failure means final; raises GateError on 4xx."""
        if r.status_code == 200:
            try:
                v = r.json()
            except ValueError as e:
                return _Outcome(failure=f"the gate's answer is not JSON: {e}")
            if not isinstance(v, dict):
                return _Outcome(failure="the gate's answer is not a JSON object")
            return _Outcome(answer=v)
        code, message = _error_of(r)
        if r.status_code == 409 and code in ("offset_mismatch", "trace_not_held"):
            return _Outcome(conflict=True)
        if r.status_code == 429 or r.status_code >= 500:
            return _Outcome(failure=f"{r.status_code} {code}: {message}")
        raise GateError(code, message, r.status_code)

    def delay(self, attempt: int, r: Optional[httpx.Response]) -> float:
        if r is not None:
            after = r.headers.get("retry-after")
            if after:
                try:
                    return min(float(after), self.max_backoff)
                except ValueError:
                    pass
        base = min(self.backoff * (2**attempt), self.max_backoff)
        return base * (0.5 + random.random() / 2)

    def unavailable(self, why: str) -> Decision:
        if self.on_unavailable == "raise":
            raise GateUnavailable(f"the Tribunal gate at {self.url} could not be asked: {why}")
        return Decision(
            decision=self.on_unavailable,
            reasons=[f"tribunal gate unavailable ({why}); failing {'closed' if self.on_unavailable == 'block' else 'open'}"],
            unavailable=True,
        )

    @staticmethod
    def settled(d: Decision, view: Mapping[str, Any]) -> Optional[Decision]:
        """The decision once the escalation `view` (GET /api/v1/escalations/{id}) is
        settled, else None."""
        status = str(view.get("status", "pending"))
        if status == "pending":
            return None
        outcome = view.get("decision")
        if outcome not in ("allow", "block"):
            outcome = "block"
        esc = d.escalation or Escalation(id=view.get("id"), status=status)
        return replace(
            d,
            decision=outcome,
            escalation=replace(esc, status=status),
            reasons=d.reasons + [f"escalation {esc.id} {status}"],
        )


def _otlp_of(
    messages: Optional[Messages],
    trace: OtelTrace,
    trace_id: Optional[str],
    flush: bool,
    timeout: float,
) -> Optional[str]:
    """The OpenTelemetry trace id a call names (None when it sends its messages); flushes
    the finished spans first when asked."""
    if messages is not None:
        if trace is not None:
            raise ValueError("messages, trace: give one (trace names a trace sent over OpenTelemetry)")
        return None
    if trace_id is not None:
        raise ValueError("trace_id: only with messages (a trace sent over OpenTelemetry is named by trace)")
    otlp = otel_trace_id(trace)
    if flush:
        _flush_otel(int(timeout * 1000))
    return otlp


def _error_of(r: httpx.Response) -> "tuple[str, str]":
    try:
        e = r.json().get("error", {})
        return str(e.get("code", "http_error")), str(e.get("message", r.text))
    except (ValueError, AttributeError):
        return "http_error", r.text[:500]


def _pending_escalation(d: Decision) -> bool:
    return (
        d.decision == "escalate"
        and d.escalation is not None
        and d.escalation.id is not None
        and d.escalation.status == "pending"
    )


class Gate:
    """A synchronous client of the Tribunal gate.

    >>> gate = Gate("http://127.0.0.1:7878", token=os.environ["TRIBUNAL_TOKEN"])
    >>> gate.check(messages, pending={"name": "shell", "arguments": {"command": "ls"}})

    `on_unavailable` decides when the gate cannot be asked after `retries` retries:
    `"block"` (the default: fail closed), `"allow"` (fail open) or `"raise"`
    (:class:`GateUnavailable`). `escalation_wait` is how long (seconds) `check` waits for a
    reviewer to decide an escalation (0: return it pending at once).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:7878",
        token: Optional[str] = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
        on_unavailable: FailMode = "block",
        escalation_wait: float = 0.0,
        poll_interval: float = 1.0,
        context: Optional[Mapping[str, Any]] = None,
        format: Optional[str] = None,
        client: Optional[httpx.Client] = None,
    ) -> None:
        self._core = _Core(
            url, token, timeout, retries, backoff, max_backoff, on_unavailable,
            escalation_wait, poll_interval, context, format,
        )
        self._http = client or httpx.Client(timeout=timeout)
        self._own = client is None

    @property
    def url(self) -> str:
        return self._core.url

    def new_trace_id(self) -> str:
        return f"trace-{uuid.uuid4().hex}"

    def check(
        self,
        messages: Optional[Messages] = None,
        pending: Any = None,
        *,
        trace_id: Optional[str] = None,
        context: Optional[Mapping[str, Any]] = None,
        explain: bool = False,
        format: Optional[str] = None,
        trace: OtelTrace = None,
        flush: bool = True,
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
    ) -> Decision:
        """Asks the gate about `pending` (a tool call `{name, arguments}`, an assistant
        message, or a reply text) after `messages`. With `trace_id`, later calls for the
        same conversation send only its new messages.

        Without `messages`, the trace is one the gate received over OpenTelemetry: `trace`
        (an id, a `traceparent`, a span), else the current span's trace. Finished spans are
        flushed to the exporter first unless `flush=False`.

        `tools` are the agent's tool definitions (OpenAI function tools, each with its MCP
        `annotations` when it has any), held with the trace: policies read them as
        `input.trace.tools`, and the gate's tool classes read their annotations. Changed
        definitions send the trace whole again."""
        c = self._core
        otlp = _otlp_of(messages, trace, trace_id, flush, c.timeout)
        plan = c.plan(messages, pending, trace_id, context, explain, format, whole=False, otlp=otlp, tools=tools)
        out = self._send(plan.body)
        if out.conflict and otlp is None:
            plan = c.plan(messages, pending, trace_id, context, explain, format, whole=True, tools=tools)
            out = self._send(plan.body)
        if out.failure is not None or out.answer is None:
            return c.unavailable(out.failure or "no answer")
        d = Decision.from_json(out.answer)
        c.remember(trace_id, plan, d)
        if _pending_escalation(d) and c.escalation_wait > 0:
            d = self.wait(d, c.escalation_wait)
        return d

    def enforce(self, messages: Optional[Messages] = None, pending: Any = None, **kw: Any) -> Decision:
        """`check`, raising :class:`Blocked` unless the step is allowed."""
        return self.check(messages, pending, **kw).raise_for_block()

    def escalation(self, id: str) -> Dict[str, Any]:
        """The review item `id` as the gate has it (`GET /api/v1/escalations/{id}`)."""
        r = self._http.get(
            self._core.url + ESCALATION_PATH + id, headers=self._core.headers
        )
        out = self._core.read(r)
        if out.answer is None:
            raise GateUnavailable(out.failure or f"escalation {id}: no answer")
        return out.answer

    def wait(self, d: Decision, seconds: float) -> Decision:
        """Polls an escalated decision until a reviewer settles it or `seconds` pass; the
        decision unchanged (still `escalate`, never allowed) if not settled by then."""
        if not _pending_escalation(d) or d.escalation is None or d.escalation.id is None:
            return d
        deadline = time.monotonic() + seconds
        while True:
            try:
                view = self.escalation(d.escalation.id)
            except (httpx.TransportError, GateUnavailable):
                view = {}
            s = self._core.settled(d, view) if view else None
            if s is not None:
                return s
            left = deadline - time.monotonic()
            if left <= 0:
                return d
            time.sleep(min(self._core.poll_interval, left))

    def forget(self, trace_id: str) -> None:
        """Drops what the client remembers of a trace: its next call sends it whole."""
        self._core.held.pop(trace_id, None)

    def _send(self, body: Dict[str, Any]) -> _Outcome:
        c = self._core
        last = "no attempt"
        data = json.dumps(body, default=str)
        for attempt in range(c.retries + 1):
            r: Optional[httpx.Response] = None
            try:
                r = self._http.post(c.url + GATE_PATH, content=data, headers=c.headers)
                out = c.read(r)
                if out.failure is None:
                    return out
                last = out.failure
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            if attempt < c.retries:
                time.sleep(c.delay(attempt, r))
        return _Outcome(failure=last)

    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> "Gate":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncGate:
    """The asynchronous :class:`Gate` (same arguments and behaviour, on httpx.AsyncClient)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:7878",
        token: Optional[str] = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
        on_unavailable: FailMode = "block",
        escalation_wait: float = 0.0,
        poll_interval: float = 1.0,
        context: Optional[Mapping[str, Any]] = None,
        format: Optional[str] = None,
        client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self._core = _Core(
            url, token, timeout, retries, backoff, max_backoff, on_unavailable,
            escalation_wait, poll_interval, context, format,
        )
        self._http = client or httpx.AsyncClient(timeout=timeout)
        self._own = client is None

    @property
    def url(self) -> str:
        return self._core.url

    def new_trace_id(self) -> str:
        return f"trace-{uuid.uuid4().hex}"

    async def check(
        self,
        messages: Optional[Messages] = None,
        pending: Any = None,
        *,
        trace_id: Optional[str] = None,
        context: Optional[Mapping[str, Any]] = None,
        explain: bool = False,
        format: Optional[str] = None,
        trace: OtelTrace = None,
        flush: bool = True,
        tools: Optional[Sequence[Mapping[str, Any]]] = None,
    ) -> Decision:
        c = self._core
        # The current span is read here (it lives in this task's context); flushing the
        # exporters blocks, so it runs off the event loop.
        otlp = _otlp_of(messages, trace, trace_id, False, c.timeout)
        if otlp is not None and flush:
            await asyncio.get_running_loop().run_in_executor(
                None, _flush_otel, int(c.timeout * 1000)
            )
        plan = c.plan(messages, pending, trace_id, context, explain, format, whole=False, otlp=otlp, tools=tools)
        out = await self._send(plan.body)
        if out.conflict and otlp is None:
            plan = c.plan(messages, pending, trace_id, context, explain, format, whole=True, tools=tools)
            out = await self._send(plan.body)
        if out.failure is not None or out.answer is None:
            return c.unavailable(out.failure or "no answer")
        d = Decision.from_json(out.answer)
        c.remember(trace_id, plan, d)
        if _pending_escalation(d) and c.escalation_wait > 0:
            d = await self.wait(d, c.escalation_wait)
        return d

    async def enforce(
        self, messages: Optional[Messages] = None, pending: Any = None, **kw: Any
    ) -> Decision:
        return (await self.check(messages, pending, **kw)).raise_for_block()

    async def escalation(self, id: str) -> Dict[str, Any]:
        r = await self._http.get(
            self._core.url + ESCALATION_PATH + id, headers=self._core.headers
        )
        out = self._core.read(r)
        if out.answer is None:
            raise GateUnavailable(out.failure or f"escalation {id}: no answer")
        return out.answer

    async def wait(self, d: Decision, seconds: float) -> Decision:
        if not _pending_escalation(d) or d.escalation is None or d.escalation.id is None:
            return d
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            try:
                view = await self.escalation(d.escalation.id)
            except (httpx.TransportError, GateUnavailable):
                view = {}
            s = self._core.settled(d, view) if view else None
            if s is not None:
                return s
            left = deadline - loop.time()
            if left <= 0:
                return d
            await asyncio.sleep(min(self._core.poll_interval, left))

    def forget(self, trace_id: str) -> None:
        self._core.held.pop(trace_id, None)

    async def _send(self, body: Dict[str, Any]) -> _Outcome:
        c = self._core
        last = "no attempt"
        data = json.dumps(body, default=str)
        for attempt in range(c.retries + 1):
            r: Optional[httpx.Response] = None
            try:
                r = await self._http.post(c.url + GATE_PATH, content=data, headers=c.headers)
                out = c.read(r)
                if out.failure is None:
                    return out
                last = out.failure
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            if attempt < c.retries:
                await asyncio.sleep(c.delay(attempt, r))
        return _Outcome(failure=last)

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncGate":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
