import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { createMemoryService } from "../cli/memory-service.ts";
import { openMemory } from "../memory/index.ts";
import { createApprovalStore, createModelClient, loadConfig, requireApiKey } from "../runtime/index.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";
import { startMessagesApi } from "./support/messages-api.ts";

it("passes over a batch of journal entries whose edits were rejected on three nights (not three runs), and says so", async () => {
  const api = await startMessagesApi();
  const dir = tempDir("nightshift-memory-stuck-", "/var/tmp");
  try {
    const home = join(dir.path, "home");
    mkdirSync(home);
    const loaded = loadConfig({ NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: api.url, ANTHROPIC_API_KEY: "sk-ant-stuck-test" }, home);
    const clock = new FakeClock();
    const memory = openMemory(home, clock, loaded.config.memory.cap);
    memory.journal.append({ at: clock.now(), kind: "note", session: "s1", source: "user", text: "The user's printer is in the hallway." });
    api.respondWith(() => ({ content: [{ type: "text", text: "I would rather chat than write JSON." }] }));
    const role = loaded.roles.small;
    const service = createMemoryService({
      loaded,
      clock,
      memory,
      small: () => createModelClient(role, requireApiKey(role), { clock, retry: { ...loaded.config.model_retries, attempts: 0 } }),
      tasks: { active: () => [], finishedSince: () => [] },
      approvals: createApprovalStore(join(home, "state", "approvals"), { clock, expireMs: 60_000 }),
    });
    for (let night = 1; night <= 3; night++) {
      assert.match(await service.consolidate(), /edits were rejected, memory unchanged/);
      // A second try on the first day (a manual run) is one night still.
      if (night === 1) assert.match(await service.consolidate(), /edits were rejected/);
      assert.equal(api.requests.length, night + 1, "each night reads the same entries again");
      clock.advance(86_400_000);
    }
    assert.match(await service.consolidate(), /passed over after 3 nights of rejected attempts/);
    assert.equal(api.requests.length, 4, "the stuck batch is not sent again");
    assert.match(await service.consolidate(), /Nothing new in the journal/);
    assert.match(await service.digest(), /passed over after 3 nights of rejected attempts/, "the digest tells the user");
  } finally {
    await api.close();
    dir.cleanup();
  }
});
