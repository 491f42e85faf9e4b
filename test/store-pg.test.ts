import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { SessionEvent } from "../runtime/events.ts";
import { openPgSessions, SessionTakenOver, type PgSessions } from "../runtime/store/pg-sessions.ts";
import { isCi } from "./support/prerequisites.ts";

/** `.ci/run` starts a throwaway PostgreSQL cluster and exports its URL; elsewhere these tests skip. */
const URL = process.env.NIGHTSHIFT_TEST_DATABASE_URL;
const missing = URL ? undefined : "no PostgreSQL: set NIGHTSHIFT_TEST_DATABASE_URL (`eval \"$(bash .ci/postgres.sh)\"` starts a throwaway cluster)";
if (missing && isCi()) throw new Error(missing);

const event = (n: number): SessionEvent => ({ type: "user", at: n, text: `message ${n}` });

describe("session logs in PostgreSQL", { skip: missing }, () => {
  let laptop: PgSessions;
  let server: PgSessions;
  before(async () => {
    // Two machines: two clients, one database.
    [laptop, server] = await Promise.all([openPgSessions(URL!), openPgSessions(URL!)]);
  });
  after(async () => {
    await laptop?.close();
    await server?.close();
  });

  it("appends in order and reads from an offset", async () => {
    const session = randomUUID();
    const claim = (await laptop.claim(session, "laptop"))!;
    assert.equal(await laptop.append(claim, [event(1), event(2)]), 2);
    assert.equal(await laptop.append(claim, [event(3)]), 3);
    assert.deepEqual((await server.readFrom(session, 1)).map((row) => [row.seq, (row.event as { text: string }).text]), [[2, "message 2"], [3, "message 3"]]);
  });

  it("lets no other machine claim a session whose owner is alive, and hands it over once the owner goes silent", async () => {
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
  });

  it("keeps numbers unique and gapless when one machine appends from several places at once", async () => {
    const session = randomUUID();
    const claim = (await laptop.claim(session, "laptop"))!;
    await Promise.all(Array.from({ length: 20 }, (_, i) => laptop.append(claim, [event(i)])));
    assert.deepEqual((await server.readFrom(session)).map((row) => row.seq), Array.from({ length: 20 }, (_, i) => i + 1));
  });
});
