"""An MCP server (the official Python SDK) for the proxy tests. Its tools: `read_ticket`
returns the text in $TICKET_TEXT; `send_email`, `run_command` and `search` return what they did (and log the first two);
`close_ticket` is annotated as destructive and logs what it closed. With
$SEARCH_DESCRIPTION set, `search` is described with it (a changed description). Over stdio,
or Streamable HTTP at http://127.0.0.1:$MCP_PORT/mcp when that is set."""

import os

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("tickets")


@server.tool(description=os.environ.get("SEARCH_DESCRIPTION", "Searches the ticket archive."))
def search(query: str) -> str:
    return f"3 tickets match {query!r}."


@server.tool(description="Reads a support ticket.")
def read_ticket(ticket_id: str) -> str:
    return os.environ.get("TICKET_TEXT", f"Ticket {ticket_id}: the printer is out of paper.")


@server.tool(description="Sends an email.")
def send_email(to: str, body: str) -> str:
    with open(os.environ["SENT_LOG"], "a") as f:
        f.write(f"{to}\n")
    return f"sent to {to}"


@server.tool(description="Runs a shell command on the ticket server.")
def run_command(command: str) -> str:
    with open(os.environ["SENT_LOG"], "a") as f:
        f.write(f"ran:{command}\n")
    return "done"


@server.tool(
    description="Closes a support ticket for good.",
    annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False, open_world_hint=False),
)
def close_ticket(ticket_id: str) -> str:
    with open(os.environ["SENT_LOG"], "a") as f:
        f.write(f"closed:{ticket_id}\n")
    return f"closed {ticket_id}"


if __name__ == "__main__":
    if os.environ.get("MCP_PORT"):
        server.run("streamable-http", host="127.0.0.1", port=int(os.environ["MCP_PORT"]))
    else:
        server.run()
