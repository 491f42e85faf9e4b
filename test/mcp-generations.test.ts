import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mcpGenerations, type McpServers, type Started } from "../runtime/mcp/generations.ts";

/** MCP servers by generation: what a change of the `mcp` setting does to sessions running and to come. */
describe("MCP servers by generation of the mcp setting", () => {
  const setup = () => {
    const events: string[] = [];
    let n = 0;
    const start = async (servers: McpServers): Promise<Started> => {
      const generation = ++n;
      events.push(`start ${generation}: ${Object.keys(servers).join(",")}`);
      return { servers: [], notices: [], close: async () => void events.push(`stop ${generation}`) };
    };
    return { events, generations: mcpGenerations(start, { a: { command: "a", tools: {} } }) };
  };

  it("starts the servers once for every session until the setting changes", async () => {
    const { events, generations } = setup();
    const first = generations.acquire();
    const second = generations.acquire();
    await Promise.all([first.started, second.started]);
    assert.deepEqual(events, ["start 1: a"]);
    assert.equal(generations.replace({ a: { command: "a", tools: {} } }), false, "the same setting: nothing changes");
  });

  it("keeps a running session's servers until it ends, and gives the next session the new setting's", async () => {
    const { events, generations } = setup();
    const running = generations.acquire();
    await running.started;
    assert.equal(generations.replace({ b: { command: "b", tools: {} } }), true);
    const next = generations.acquire();
    await next.started;
    assert.deepEqual(events, ["start 1: a", "start 2: b"], "the old servers still run for the running session");
    running.release();
    running.release(); // idempotent
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(events, ["start 1: a", "start 2: b", "stop 1"]);
    next.release();
    await generations.close();
    assert.deepEqual(events, ["start 1: a", "start 2: b", "stop 1", "stop 2"]);
  });

  it("stops an unused generation at once when the setting changes, and starts nothing until a session wants servers", async () => {
    const { events, generations } = setup();
    generations.acquire().release();
    await new Promise((resolve) => setImmediate(resolve));
    generations.replace({});
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(events, ["start 1: a", "stop 1"]);
    await generations.close();
    assert.deepEqual(events, ["start 1: a", "stop 1"]);
  });
});
