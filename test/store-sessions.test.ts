import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { SessionEvent } from "../runtime/events.ts";
import { openFileSessions, type SessionStore } from "../runtime/store/file-sessions.ts";
import { openPgSessions, SessionTakenOver } from "../runtime/store/pg-sessions.ts";
import { tempDir } from "./support/home.ts";
import { freshDatabase, noDatabase } from "./support/cluster.ts";

/** A database of this file's own on the test cluster (test/support/cluster.ts); without one the Postgres cases skip. */
const missing = noDatabase;
const database = missing ? undefined : await freshDatabase();
const URL = database?.url;

const event = (n: number): SessionEvent => ({ type: "user", at: n, text: `message ${n}` });

/** A store and a way to make `session` look held by another machine that is alive. */
interface Backend {
  open(): Promise<SessionStore>;
  heldElsewhere(session: string): Promise<void>;
  cleanup(): Promise<void>;
}

const dir = tempDir("nightshift-store-");
const sleepers: ReturnType<typeof spawn>[] = [];
const backends: Record<string, { skip?: string; make(): Backend }> = {
  files: {
    make: () => ({
      open: async () => openFileSessions(dir.path, { sync: false }),
      async heldElsewhere(session) {
        // Another live process's lock, as a second `nightshift start` on the same home would hold.
        const sleeper = spawn("sleep", ["30"]);
        sleepers.push(sleeper);
        mkdirSync(dir.path, { recursive: true });
        writeFileSync(join(dir.path, `${session}.jsonl.lock`), String(sleeper.pid));
      },
      cleanup: async () => {},
    }),
  },
  postgres: {
    ...(missing ? { skip: missing } : {}),
    make: () => {
      const others: SessionStore[] = [];
      return {
        open: () => openPgSessions(URL!),
        async heldElsewhere(session) {
          const other = await openPgSessions(URL!);
          others.push(other);
          assert.ok(await other.claim(session, "other-machine"));
        },
        cleanup: async () => void (await Promise.all(others.map((other) => other.close()))),
      };
    },
  },
};

after(async () => {
  for (const sleeper of sleepers) sleeper.kill();
  dir.cleanup();
  await database?.drop();
});

// The contract both stores keep: the runtime can be moved onto either.
for (const [name, { skip, make }] of Object.entries(backends)) {
  describe(`session store contract (${name})`, { ...(skip ? { skip } : {}) }, () => {
    it("appends in order and reads from an offset", async () => {
      const backend = make();
      const store = await backend.open();
      try {
        const session = randomUUID();
        const claim = (await store.claim(session, "laptop"))!;
        assert.equal(await store.append(claim, [event(1), event(2)]), 2);
        assert.equal(await store.append(claim, [event(3)]), 3);
        assert.deepEqual((await store.readFrom(session, 1)).map((row) => [row.seq, (row.event as { text: string }).text]), [[2, "message 2"], [3, "message 3"]]);
        assert.equal(await store.last(session), 3);
        assert.equal(await store.last(randomUUID()), 0, "a session never written has no events");
      } finally {
        await store.close();
        await backend.cleanup();
      }
    });

    it("takes an event whose text holds a NUL or a lone surrogate (a binary file's bytes), and the events after it", async () => {
      const backend = make();
      const store = await backend.open();
      try {
        const session = randomUUID();
        const claim = (await store.claim(session, "laptop"))!;
        const odd: SessionEvent = { type: "user", at: 1, text: "before\0after \ud800 end" };
        assert.equal(await store.append(claim, [odd, event(2)]), 2);
        const [first, second] = await store.readFrom(session, 0);
        // PostgreSQL's jsonb holds neither: each reads back as U+FFFD there, as it was in a file.
        assert.ok(["before\0after \ud800 end", "before\uFFFDafter \uFFFD end"].includes((first!.event as { text: string }).text));
        assert.equal((second!.event as { text: string }).text, "message 2");
      } finally {
        await store.close();
        await backend.cleanup();
      }
    });

    it("finds a task's specialists' sessions by the task, and none of another task whose id starts the same", async () => {
      const backend = make();
      const store = await backend.open();
      try {
        const task = randomUUID();
        for (const session of [task, `${task}.toolu_1.reviewer`, `${task}.plan.planner`, `${task}0.plan.planner`, `${task}-2.plan.planner`]) {
          await store.append((await store.claim(session, "laptop"))!, [event(1)]);
        }
        assert.deepEqual(await store.specialistsOf(task), [`${task}.plan.planner`, `${task}.toolu_1.reviewer`]);
        assert.deepEqual(await store.specialistsOf(randomUUID()), []);
      } finally {
        await store.close();
        await backend.cleanup();
      }
    });

    it("refuses a session another live machine (or process) holds", async () => {
      const backend = make();
      const store = await backend.open();
      try {
        const session = randomUUID();
        await backend.heldElsewhere(session);
        assert.equal(await store.claim(session, "laptop"), undefined);
      } finally {
        await store.close();
        await backend.cleanup();
      }
    });

    it("numbers events uniquely and without gaps when one machine appends from several places at once", async () => {
      const backend = make();
      const store = await backend.open();
      try {
        const session = randomUUID();
        const claim = (await store.claim(session, "laptop"))!;
        await Promise.all(Array.from({ length: 20 }, (_, i) => store.append(claim, [event(i)])));
        assert.deepEqual((await store.readFrom(session)).map((row) => row.seq), Array.from({ length: 20 }, (_, i) => i + 1));
      } finally {
        await store.close();
        await backend.cleanup();
      }
    });
  });
}

describe("session logs in PostgreSQL across machines", { ...(missing ? { skip: missing } : {}) }, () => {
  it("wakes a listener on another connection with the session's id once an append commits", async () => {
    const [writer, reader] = await Promise.all([openPgSessions(URL!), openPgSessions(URL!)]);
    try {
      const session = randomUUID();
      const woken: string[] = [];
      let heard: () => void = () => {};
      const arrived = new Promise<void>((resolve) => (heard = resolve));
      const unlisten = await reader.listen((id) => {
        woken.push(id);
        heard();
      });
      const claim = (await writer.claim(session, "server"))!;
      await writer.append(claim, [event(1), event(2)]);
      await arrived;
      await unlisten();
      assert.deepEqual(woken, [session], "one notification per append, naming the session");
      assert.equal(await reader.last(session), 2);
    } finally {
      await writer.close();
      await reader.close();
    }
  });

  it("hands a session over once its owner goes silent, and refuses the old owner's late writes", async () => {
    const [laptop, server] = await Promise.all([openPgSessions(URL!), openPgSessions(URL!)]);
    try {
      const session = randomUUID();
      const first = (await laptop.claim(session, "laptop"))!;
      assert.equal(await server.claim(session, "server"), undefined, "the laptop is alive");
      assert.ok(await laptop.heartbeat(first));
      // Staleness is the database's clock against the last heartbeat; a threshold of 0 stands for "silent long enough".
      const taken = (await server.claim(session, "server", { staleMs: 0 }))!;
      assert.equal(taken.epoch, first.epoch + 1);
      await server.append(taken, [event(1)]);
      // The laptop wakes and tries to carry on: refused, and its heartbeat says so.
      await assert.rejects(laptop.append(first, [event(2)]), (error: Error) => error instanceof SessionTakenOver && /is now run by server; laptop stops writing to it/.test(error.message));
      assert.equal(await laptop.heartbeat(first), false);
      assert.deepEqual((await server.readFrom(session)).map((row) => row.seq), [1]);
    } finally {
      await laptop.close();
      await server.close();
    }
  });
});
