"""Airlock as an OAuth 2.1 resource server for agents (the MCP authorization spec; docs/identity.md).

`resource_server.py` validates access tokens and names the agent; `jwks.py` fetches and caches the
issuer's signing keys; `metadata.py` serves Protected Resource Metadata (RFC 9728) and writes the
`WWW-Authenticate` challenges that point clients to it.
"""
