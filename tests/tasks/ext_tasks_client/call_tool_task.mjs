// One held tool call through @modelcontextprotocol/ext-tasks (2026-07-28 tasks extension), as a real agent makes it.
// Usage: node call_tool_task.mjs <mcp url> <agent token> <tool> <arguments JSON> [cancel]
// Prints one JSON line per step: {"type":"handle"|"event"|"result"|"error"|"cancelled", ...}.
// With "cancel", the client cancels the task once it has been created (after the first line).
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import {
  createTaskSessionFromClient,
  resultFromTaskOutcome,
  TaskCancelledError,
  TaskFailedError,
} from "@modelcontextprotocol/ext-tasks/client";

const VERSION = "2026-07-28";
const EXTENSION = "io.modelcontextprotocol/tasks";
const [url, token, tool, argumentsJson, action] = process.argv.slice(2);
const info = { name: "airlock-ext-tasks-test", version: "0" };
const capabilities = { extensions: { [EXTENSION]: {} } };
const print = (line) => console.log(JSON.stringify(line));

// The SDK's codecs reject task shapes, so task traffic goes over this plain POST (ext-tasks README).
async function rawDispatch(request, options) {
  const headers = {
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
    "MCP-Protocol-Version": VERSION,
    "Mcp-Method": request.method,
    Authorization: `Bearer ${token}`,
    ...(request.method === "tools/call" ? { "Mcp-Name": request.params.name } : {}),
    ...(options?.context?.headers ?? {}),
  };
  const response = await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify({ jsonrpc: "2.0", id: Math.floor(Math.random() * 1e9), ...request }),
    signal: options?.signal,
  });
  const text = await response.text();
  const body = response.headers.get("content-type")?.startsWith("text/event-stream")
    ? JSON.parse(text.split("\n").filter((l) => l.startsWith("data:")).pop().slice(5))
    : JSON.parse(text);
  return "error" in body ? { kind: "error", error: body.error } : { kind: "result", result: body.result };
}

const client = new Client(info, { capabilities, versionNegotiation: { mode: { pin: VERSION } } });
await client.connect(
  new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  }),
);
const session = createTaskSessionFromClient(client, {
  endpointId: "airlock-test",
  rawDispatch,
  v2RequestFraming: { protocolVersion: VERSION, clientInfo: info, clientCapabilities: {} },
});
try {
  const execution = await session.callTool(tool, JSON.parse(argumentsJson));
  print({ type: "handle", kind: execution.kind });
  if (action === "cancel" && execution.kind === "task") await execution.cancel();
  const { outcome } = await execution.settle({ onEvent: (event) => print({ type: "event", event }) });
  print({ type: "result", result: resultFromTaskOutcome(outcome) });
} catch (error) {
  if (error instanceof TaskCancelledError) print({ type: "cancelled", message: error.message });
  else if (error instanceof TaskFailedError) print({ type: "error", message: error.message, code: error.code });
  else print({ type: "error", message: String(error?.stack ?? error) });
}
await session.close?.();
await client.close();
