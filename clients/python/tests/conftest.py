"""A real `tribunal serve` for the tests: the binary cargo built (`TRIBUNAL_BIN`, else
`$CARGO_TARGET_DIR/debug/tribunal`, else the repository's `target/debug/tribunal`), a
fresh SQLite store in a temporary directory, and tokens made with `tribunal token create`."""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[3]


def tribunal_bin() -> Path:
    if os.environ.get("TRIBUNAL_BIN"):
        return Path(os.environ["TRIBUNAL_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = target / "debug" / "tribunal"
    if not path.exists():
        raise RuntimeError(
            f"{path} does not exist: build it with `cargo build -p tribunal-cli` or set TRIBUNAL_BIN"
        )
    return path


@dataclass
class Server:
    url: str
    agent_token: str
    reviewer_token: str
    dir: Path
    log: List[str]


def _token(bin: Path, d: Path, role: str) -> str:
    out = subprocess.run(
        [str(bin), "token", "create", "--role", role],
        cwd=d,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"tribunal token create --role {role} failed: {out.stderr}")
    return out.stdout.strip()


def start_server(d: Path, extra: List[str] = ()) -> "tuple[subprocess.Popen[str], Server]":
    bin = tribunal_bin()
    agent = _token(bin, d, "agent")
    reviewer = _token(bin, d, "reviewer")
    proc = subprocess.Popen(
        [str(bin), "serve", "--listen", "127.0.0.1:0", *extra],
        cwd=d,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    if "http://" not in first:
        proc.kill()
        raise RuntimeError(f"tribunal serve did not start: {first}{proc.stderr.read()}")
    addr = first.split("http://", 1)[1].split()[0]
    log: List[str] = [first]

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return proc, Server(f"http://{addr}", agent, reviewer, d, log)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("tribunal")
    proc, srv = start_server(d, ["--review-deadline-s", "60"])
    try:
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
