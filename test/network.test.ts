import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, afterEach, before, describe, it } from "node:test";
import type { EventOf } from "../runtime/events.ts";
import { createRuntimeHarness, resultsIn, scriptedApprover, type RuntimeHarness } from "./support/runtime-harness.ts";
import { LINUX_BACKENDS, needs } from "./support/prerequisites.ts";

// The "internet" is a server on the host's loopback, at 127.0.0.2: commands reach it only through the
// proxy (127.0.0.1 and localhost are NO_PROXY: inside the sandbox they mean its own loopback).
let server: Server;
let port: number;
const seen: string[] = [];
before(async () => {
  server = createServer((request, response) => {
    seen.push(request.url ?? "");
    response.end(`hello from the host: ${request.url}`);
  }).listen(0, "127.0.0.2");
  await new Promise((resolve) => server.once("listening", resolve));
  port = (server.address() as { port: number }).port;
});
after(() => server.close());

let h: RuntimeHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  seen.length = 0;
});

const curl = (path: string) => ({ type: "tool_use" as const, name: "bash", input: { command: `curl -sS --max-time 10 http://127.0.0.2:${port}${path}` } });
const done = { content: [{ type: "text" as const, text: "done" }] };
/** The test "internet" lives on loopback, which the proxy refuses unless this is on. */
const PRIVATE = "sandbox:\n  allow_private_network: true\n";

// Against both Linux sandboxes: the proxy and its decisions are the same, the way into them differs.
for (const backend of LINUX_BACKENDS) {
  const sandboxed = backend === "srt" ? needs("srt") : needs("bwrap", "socat");
  describe(`network from sandboxed commands (${backend})`, () => {
    it("never reaches this machine's loopback or private addresses, even for an allowed host", sandboxed, async () => {
      h = await createRuntimeHarness({ sandbox: backend, config: "permissions:\n  allow:\n    - network: \"*\"\n" });
      h.api.script({ content: [curl("/metadata")] }, done);
      await h.runtime.start(h.runtime.newSessionId(), h.task());
      const [result] = resultsIn(h.api, 1);
      assert.match(result!.content, /\[network: 127\.0\.0\.2 blocked: 127\.0\.0\.2 resolves to 127\.0\.0\.2 \(.*\); commands never reach/);
      assert.deepEqual(seen, []);
    });

    it("reaches a host on the allow list through the proxy", sandboxed, async () => {
      h = await createRuntimeHarness({ sandbox: backend, config: PRIVATE + "permissions:\n  allow:\n    - network: 127.0.0.2\n" });
      h.api.script({ content: [curl("/allowed")] }, done);
      await h.runtime.start(h.runtime.newSessionId(), h.task());
      const [result] = resultsIn(h.api, 1);
      assert.equal(result!.is_error, undefined, result!.content);
      assert.match(result!.content, /hello from the host: \/allowed/);
    });

    it("blocks a host not on the list when nobody can approve, tells the model why, and never contacts it", sandboxed, async () => {
      h = await createRuntimeHarness({ sandbox: backend, config: PRIVATE });
      h.api.script({ content: [curl("/secret-exfil")] }, done);
      const id = h.runtime.newSessionId();
      await h.runtime.start(id, h.task());
      const [result] = resultsIn(h.api, 1);
      // curl exits 0 on a 403 without -f; the note after the output is what tells the model why.
      assert.match(result!.content, /\[network: 127\.0\.0\.2 blocked: Not approved: connect to 127\.0\.0\.2 \(a domain not on the allow list\); no one can approve it here/);
      assert.deepEqual(seen, []);
      const decision = (await h.events(id)).find((event): event is EventOf<"permission"> => event.type === "permission" && event.kind === "network");
      assert.equal(decision?.action, "ask");
    });

    it("adds a domain allowed for this task to this task only", sandboxed, async () => {
      const approver = scriptedApprover([{ decision: "task" }, { decision: "deny", reason: "not for this one" }], () => h!.runtime.approvals);
      h = await createRuntimeHarness({ sandbox: backend, approvers: [approver], config: PRIVATE });
      h.api.script({ content: [curl("/one")] }, { content: [curl("/two")] }, done);
      await h.runtime.start(h.runtime.newSessionId(), h.task());
      assert.equal(approver.seen.length, 1, "asked once for the domain");
      assert.equal(approver.seen[0]!.summary, "connect to 127.0.0.2");
      assert.deepEqual(seen, ["/one", "/two"]);

      h.api.script({ content: [curl("/three")] }, done);
      await h.runtime.start(h.runtime.newSessionId(), h.task());
      assert.equal(approver.seen.length, 2, "a new task asks again");
      assert.deepEqual(seen, ["/one", "/two"]);
      assert.match(resultsIn(h.api, h.api.requests.length - 1)[0]!.content, /the user said: not for this one/);
    });

    it("never reaches a link-local address (cloud metadata), even with allow_private_network on and every host allowed", sandboxed, async () => {
      h = await createRuntimeHarness({ sandbox: backend, config: `${PRIVATE}permissions:\n  allow:\n    - network: "*"\n` });
      h.api.script({ content: [{ type: "tool_use", name: "bash", input: { command: "curl -sS --max-time 10 http://169.254.169.254/latest/meta-data/" } }] }, done);
      await h.runtime.start(h.runtime.newSessionId(), h.task());
      const [result] = resultsIn(h.api, 1);
      assert.match(result!.content, /\[network: 169\.254\.169\.254 blocked: 169\.254\.169\.254 resolves to 169\.254\.169\.254 \(a link-local address \(where cloud metadata services live\)\); commands never reach link-local addresses/);
    });

    it("never reaches the dashboard's port on this machine, even with allow_private_network on and the host allowed", sandboxed, async () => {
      // The test server's port stands in for dashboard.port: what is refused is the port on loopback.
      h = await createRuntimeHarness({ sandbox: backend, config: `${PRIVATE}dashboard:\n  port: ${port}\npermissions:\n  allow:\n    - network: "*"\n` });
      h.api.script({ content: [curl("/login")] }, done);
      await h.runtime.start(h.runtime.newSessionId(), h.task());
      const [result] = resultsIn(h.api, 1);
      assert.match(result!.content, new RegExp(`\\[network: 127\\.0\\.0\\.2 blocked: port ${port} on this machine is Nightshift's dashboard \\(dashboard\\.port\\); commands never reach it`));
      assert.deepEqual(seen, []);
    });
  });
}
