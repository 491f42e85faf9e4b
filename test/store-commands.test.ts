import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import postgres from "postgres";
import { mcpCommand } from "../cli/mcp.ts";
import { loadConfig } from "../runtime/config.ts";
import { connectPg, SCHEMA_VERSION } from "../runtime/store/pg.ts";
import { nightshift } from "./support/cli.ts";
import { freshDatabase, noDatabase } from "./support/cluster.ts";
import { tempDir } from "./support/home.ts";
import { freePort } from "./support/ports.ts";
import { needs } from "./support/prerequisites.ts";

/**
 * Short commands (`nightshift pair`, `nightshift mcp`) on a machine of several on one PostgreSQL:
 * they use the shared store as it is and never change its schema (only a daemon's start does), and
 * `mcp list` goes on with this machine's approvals while the store does not answer.
 */

const PROBE = join(import.meta.dirname, "fixtures", "mcp", "probe-server.mjs");

describe("short commands and the shared store's schema", noDatabase ? { skip: noDatabase } : {}, () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let sql: postgres.Sql;
  let dir: ReturnType<typeof tempDir>;
  let env: NodeJS.ProcessEnv;
  const version = async () => (await sql<{ version: number }[]>`SELECT version FROM nightshift_schema`)[0]!.version;
  before(async () => {
    db = await freshDatabase();
    await (await connectPg(db.url)).end({ timeout: 1 }); // a daemon of this Nightshift started once
    sql = postgres(db.url, { max: 1, onnotice: () => {} });
    dir = tempDir();
    const home = join(dir.path, "home");
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, "config.yaml"), "machine: laptop\n");
    const { TELEGRAM_BOT_TOKEN: _t, ...rest } = process.env;
    env = { ...rest, NIGHTSHIFT_HOME: home, NIGHTSHIFT_DATABASE_URL: db.url };
  });
  after(async () => {
    await sql?.end({ timeout: 1 });
    await db?.drop();
    dir?.cleanup();
  });

  it("leaves a schema older than this Nightshift's as it is, saying to start this machine's daemon, which brings it up to date", async () => {
    await sql`UPDATE nightshift_schema SET version = ${SCHEMA_VERSION - 1}`;
    for (const command of [["pair", "--no-wait"], ["mcp", "list"]]) {
      const result = await nightshift(command, env);
      assert.equal(result.code, 2, `${command.join(" ")}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, new RegExp(`the shared store \\(NIGHTSHIFT_DATABASE_URL\\) cannot be used to .*: the shared store's schema \\(version ${SCHEMA_VERSION - 1}\\) is older than this Nightshift's \\(${SCHEMA_VERSION}\\): start this machine's daemon \\(\`nightshift start\`\\), which brings it up to date, then run this again`));
      assert.doesNotMatch(result.stderr, /could not reach|check that PostgreSQL runs/);
      assert.equal(await version(), SCHEMA_VERSION - 1, `${command.join(" ")} did not migrate the shared schema`);
    }
    assert.equal((await sql`SELECT 1 FROM telegram_pairing`).length, 0, "no code was made");
  });

  it("refuses a schema newer than this Nightshift's, saying to update Nightshift here rather than to check that PostgreSQL runs", async () => {
    await sql`UPDATE nightshift_schema SET version = ${SCHEMA_VERSION + 1}`;
    for (const command of [["pair", "--no-wait"], ["mcp", "approve", "notes"]]) {
      const result = await nightshift(command, env);
      assert.equal(result.code, 2, `${command.join(" ")}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, new RegExp(`cannot be used to .*: the database's Nightshift schema is version ${SCHEMA_VERSION + 1}, newer than this Nightshift's ${SCHEMA_VERSION}: update Nightshift on this machine`));
      assert.doesNotMatch(result.stderr, /could not reach|check that PostgreSQL runs/);
    }
    assert.equal(await version(), SCHEMA_VERSION + 1);
  });
});

describe("nightshift mcp list while the shared store does not answer", needs("bwrap", "socat"), () => {
  it("lists with this machine's own approvals, saying the list is this machine's only", async () => {
    // Not under /tmp: the sandbox mounts a fresh /tmp, which would hide the home.
    const dir = tempDir("nightshift-mcp-away-", "/var/tmp");
    try {
      const home = join(dir.path, "home");
      mkdirSync(home, { recursive: true });
      writeFileSync(join(home, "config.yaml"), JSON.stringify({ machine: "laptop", mcp: { servers: { probe: { command: process.execPath, args: [PROBE] } } } }));
      // Approved here before (this machine's state/mcp/pins/, which it keeps in line with the store).
      const approved = await mcpCommand("approve", ["probe"], loadConfig({ PATH: process.env.PATH }, home), new Date());
      assert.match(approved.text, /^probe: pinned 4 tools/);
      const env = { ...process.env, NIGHTSHIFT_HOME: home, NIGHTSHIFT_DATABASE_URL: `postgres://nightshift:list-db-secret@127.0.0.1:${await freePort()}/nightshift` };

      const listed = await nightshift(["mcp", "list"], env);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /^The shared store \(NIGHTSHIFT_DATABASE_URL\) does not answer: this list shows this machine's approvals only .*`nightshift mcp approve` needs the store\.\n\nprobe \(stdio, sandboxed, no network\): 4 tools/);
      assert.match(listed.stdout, /✓ pinned {3}probe/);
      assert.doesNotMatch(listed.stdout, /withheld/);
      assert.ok(!(listed.stdout + listed.stderr).includes("list-db-secret"), "the database password is not printed");

      const refused = await nightshift(["mcp", "approve", "probe"], env);
      assert.equal(refused.code, 2, "approving still needs the store");
      assert.match(refused.stderr, /could not reach the shared store \(NIGHTSHIFT_DATABASE_URL\) to read and record MCP tool approvals/);
    } finally {
      dir.cleanup();
    }
  });
});
