"""Airlock: a self-hosted MCP gateway that enforces policy on every tool call.

The public surface is the `airlock` command and the HTTP endpoints, not Python imports.
"""

__version__ = "0.1.0"
