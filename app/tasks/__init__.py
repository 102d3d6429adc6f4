"""Held calls as MCP tasks (2025-11-25): a task is a durable, agent-bound view of a call's lifecycle."""
