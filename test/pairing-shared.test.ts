import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { createPairingStore, type PairingStore } from "../bot/pairing.ts";
import { sharedPairingCodes } from "../runtime/store/pg-pairing.ts";
import { connectPg, type Sql } from "../runtime/store/pg.ts";
import { freshDatabase, noDatabase } from "./support/cluster.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";
import { assertOnlySlowHash, oldRecord } from "./support/pairing-record.ts";

/**
 * The Telegram pairing code with several machines on one PostgreSQL: `nightshift pair` on one
 * machine (its home, its store connection) and the bot on another redeem the one code kept in the
 * store, against a real PostgreSQL, with the security of the code on one machine.
 */

const alice = { id: 4242, username: "alice", first_name: "Alice" };
const bob = { id: 5151, username: "bob" };
const mallory = { id: 666, username: "mallory" };

describe("pairing codes shared by several machines", noDatabase ? { skip: noDatabase } : {}, () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  /** Each machine's own connection, as each process has its own. */
  let laptopSql: Sql;
  let serverSql: Sql;
  let dir: ReturnType<typeof tempDir>;
  let clock: FakeClock;
  /** `nightshift pair` on the laptop, which does not run the bot. */
  let laptop: PairingStore;
  /** The bot on the server. */
  let server: PairingStore;
  const folder = (machine: string) => join(dir.path, machine, "state", "telegram");

  before(async () => {
    db = await freshDatabase();
    [laptopSql, serverSql] = await Promise.all([connectPg(db.url), connectPg(db.url)]);
  });
  beforeEach(async () => {
    await laptopSql`DELETE FROM telegram_pairing`;
    dir = tempDir();
    clock = new FakeClock();
    laptop = createPairingStore(folder("laptop"), clock, sharedPairingCodes(laptopSql));
    server = createPairingStore(folder("server"), clock, sharedPairingCodes(serverSql));
  });
  afterEach(() => dir.cleanup());
  after(async () => {
    await laptopSql?.end({ timeout: 1 });
    await serverSql?.end({ timeout: 1 });
    await db?.drop();
  });

  it("redeems on the bot's machine a code made on another, once, and tells the machine that made it", async () => {
    const { code, expiresAt } = await laptop.newCode();
    assert.equal((await server.status()).state, "waiting", "the bot's machine sees the code");
    clock.advance(60_000);
    const paired = await server.redeem(code.toLowerCase(), alice);
    assert.deepEqual(paired, { ok: true, user: { ...alice, paired_at: clock.now() } });
    assert.ok(server.isPaired(alice.id), "paired where the bot runs (shared with the others by the Telegram lease)");
    assert.deepEqual(await laptop.status(), { state: "paired", expiresAt, pairedUser: { ...alice, paired_at: clock.now() }, wrongAttempts: [] });
    const again = await server.redeem(code, bob);
    assert.equal(!again.ok && again.problem, "used");
    assert.ok(!server.isPaired(bob.id));
    assert.ok(!existsSync(join(folder("laptop"), "pairing.json")) && !existsSync(join(folder("server"), "pairing.json")), "no machine keeps the code in its files");
  });

  it("keeps only a salted scrypt hash of the code in the store, no fast hash of it", async () => {
    const { code } = await laptop.newCode();
    const record = async () => (await laptopSql<{ text: string }[]>`SELECT record::text AS text FROM telegram_pairing`)[0]!.text;
    assertOnlySlowHash(await record(), code);
    await server.redeem("AAAA-AAAA", mallory);
    assert.equal((await server.redeem(code, alice)).ok, true);
    assertOnlySlowHash(await record(), code);
  });

  it("treats a code kept the old way (an unsalted SHA-256, by an older Nightshift) as no code", async () => {
    await laptopSql`INSERT INTO telegram_pairing (id, record) VALUES (1, ${laptopSql.json(oldRecord("K7P2-MX4Q", clock.now() + 600_000))})`;
    assert.deepEqual(await laptop.status(), { state: "none", wrongAttempts: [] });
    assert.equal((await server.redeem("K7P2-MX4Q", alice) as { problem: string }).problem, "none");
    assert.ok(!server.isPaired(alice.id));
  });

  it("counts wrong codes tried at once exactly, and burns the code at the fifth even for the right one", async () => {
    const { code } = await laptop.newCode();
    const results = await Promise.all(Array.from({ length: 8 }, (_, n) => server.redeem(`WRNG-${"ABCDEFGH"[n]}AAA`, mallory)));
    assert.deepEqual(results.map((result) => !result.ok && result.problem).sort(), ["locked", "locked", "locked", "locked", "wrong", "wrong", "wrong", "wrong"]);
    const status = await laptop.status();
    assert.equal(status.state, "locked");
    assert.equal(status.wrongAttempts.length, 5, "each wrong try counted once, none lost to another at the same moment, none past the lock");
    const right = await server.redeem(code, alice);
    assert.equal(!right.ok && right.problem, "locked");
    assert.ok(!server.isPaired(alice.id));
  });

  it("lets one of two senders of the right code at once pair, never both", async () => {
    const { code } = await laptop.newCode();
    const results = await Promise.all([server.redeem(code, alice), server.redeem(code, bob)]);
    assert.equal(results.filter((result) => result.ok).length, 1, JSON.stringify(results));
    assert.equal(results.filter((result) => !result.ok && result.problem === "used").length, 1);
    assert.equal(server.users().length, 1);
  });

  it("refuses a code after its 10 minutes, and a newer code from any machine replaces the older", async () => {
    const old = await laptop.newCode();
    clock.advance(10 * 60_000);
    const late = await server.redeem(old.code, alice);
    assert.equal(!late.ok && late.problem, "expired");
    const first = await laptop.newCode();
    const second = await server.newCode(); // `nightshift pair` run on the bot's machine too
    const replaced = await server.redeem(first.code, alice);
    assert.equal(!replaced.ok && replaced.problem, "wrong");
    assert.equal((await server.redeem(second.code, alice)).ok, true);
    assert.equal((await laptop.status()).expiresAt, second.expiresAt);
  });

  it("has no code before any nightshift pair, and a damaged record counts as none", async () => {
    assert.deepEqual(await laptop.status(), { state: "none", wrongAttempts: [] });
    assert.equal((await server.redeem("AAAA-AAAA", alice) as { problem: string }).problem, "none");
    assert.equal((await laptopSql`SELECT count(*)::int AS n FROM telegram_pairing`)[0]!.n, 0, "a try without a code writes nothing");
    await laptop.newCode();
    await laptopSql`UPDATE telegram_pairing SET record = '{"code_scrypt": "short", "salt": "00"}'`;
    assert.deepEqual(await server.status(), { state: "none", wrongAttempts: [] });
    assert.equal((await server.redeem("AAAA-AAAA", alice) as { problem: string }).problem, "none");
  });
});
