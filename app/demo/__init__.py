"""The demo: an Execution-Market-like upstream MCP server for trying Airlock end to end.

Nothing here is part of the gateway itself; the gateway must work against any MCP server.
"""
