"""The agent-facing MCP transport (Streamable HTTP, both protocol eras)."""
