import assert from "node:assert/strict";
import { setTimeout as wait } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { oneAtATime } from "../cli/cluster-start.ts";
import type { MemoryService } from "../cli/memory-service.ts";
import type { Clock } from "../runtime/clock.ts";
import { cluster as clusterOf } from "../runtime/store/pg-cluster.ts";
import { connectPg, type Sql } from "../runtime/store/pg.ts";
import { freshDatabase, noDatabase } from "./support/cluster.ts";

/** A clock whose waits are short real waits: the lease is the database's, and its polling needs time to pass for real. */
const quickClock: Clock = { now: () => Date.now(), sleep: (_ms, signal) => wait(5, undefined, signal ? { signal } : {}), setTimer: (fn, ms) => { const timer = setTimeout(fn, ms); return () => clearTimeout(timer); } };

describe("memory consolidation with several machines", noDatabase ? { skip: noDatabase } : {}, () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let sql: Sql;
  before(async () => {
    db = await freshDatabase();
    sql = await connectPg(db.url);
  });
  after(async () => {
    await sql?.end({ timeout: 1 });
    await db?.drop();
  });

  it("runs on one machine at a time, each taking in the newest MEMORY.md first and giving its own right after", async () => {
    const log: string[] = [];
    const machine = (name: string): MemoryService => {
      const work: MemoryService = {
        async consolidate() {
          log.push(`${name} starts`);
          await wait(50);
          log.push(`${name} ends`);
          return `${name} consolidated`;
        },
        undo: () => "",
        memoryText: () => "",
        digest: async () => "",
      };
      return oneAtATime(work, { cluster: clusterOf(sql, name), clock: quickClock, syncFiles: async () => void log.push(`${name} syncs`) });
    };
    const [first, second] = await Promise.all([machine("m1").consolidate(), machine("m2").consolidate()]);
    assert.deepEqual([first, second], ["m1 consolidated", "m2 consolidated"]);
    // Whichever went first, the other started only after it ended and synced.
    const one = log[0]!.split(" ")[0]!;
    const other = one === "m1" ? "m2" : "m1";
    assert.deepEqual(log, [`${one} syncs`, `${one} starts`, `${one} ends`, `${one} syncs`, `${other} syncs`, `${other} starts`, `${other} ends`, `${other} syncs`]);
    const [lease] = await sql<{ expires_past: boolean }[]>`SELECT expires < now() AS expires_past FROM leases WHERE name = 'memory'`;
    assert.equal(lease?.expires_past, true, "given up at the end, so the next machine need not wait for it to expire");
  });
});
