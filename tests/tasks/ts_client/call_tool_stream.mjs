// One tool call through the TypeScript SDK's 2025-11-25 task client, as a real agent makes it.
// Usage: node call_tool_stream.mjs <mcp url> <agent token> <tool> <arguments JSON>
// Prints one JSON line per message the SDK yields (taskCreated, taskStatus, result, error).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, token, tool, argumentsJson] = process.argv.slice(2);
const client = new Client({ name: "airlock-task-test", version: "0" }, { capabilities: {} });
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
await client.connect(transport);
await client.listTools(); // the SDK asks for a task only for tools it has seen marked taskSupport
const stream = client.experimental.tasks.callToolStream(
  { name: tool, arguments: JSON.parse(argumentsJson) },
  CallToolResultSchema,
  { timeout: 120000 },
);
for await (const message of stream) {
  const line = { type: message.type };
  if (message.task) line.task = message.task;
  if (message.result) line.result = message.result;
  if (message.error) line.error = { message: message.error.message, code: message.error.code };
  console.log(JSON.stringify(line));
}
await client.close();
