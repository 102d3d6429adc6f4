"""stdio upstreams: MCP servers run as child processes, served to the gateway as Streamable HTTP.

`bridge.py` serves each stdio upstream on a private loopback port (so the gateway, executor and
sessions treat it like any HTTP upstream); `pool.py` owns one upstream's children (cap, idle stop,
restart backoff); `session.py` is one child's conversation; `process.py` starts and stops a child.
"""
