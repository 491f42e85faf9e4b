import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import postgres from "postgres";
import { checkStore, formatChecks } from "../cli/doctor.ts";
import { loadConfig } from "../runtime/config.ts";
import { connectPg, SCHEMA_VERSION } from "../runtime/store/pg.ts";
import { nightshift } from "./support/cli.ts";
import { freshDatabase, noDatabase } from "./support/cluster.ts";
import { tempDir } from "./support/home.ts";
import { freePort } from "./support/ports.ts";

/** `nightshift doctor` with a shared store: the database answers, and its schema is this Nightshift's. */

const skip = noDatabase ? { skip: noDatabase } : {};
const dir = tempDir("nightshift-store-doctor-");
after(() => dir.cleanup());

describe("doctor with a shared store", skip, () => {
  it("says whether the schema is missing, this Nightshift's, older (the next start migrates it) or newer (update Nightshift)", async () => {
    const db = await freshDatabase();
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      writeFileSync(join(dir.path, "config.yaml"), "machine: home-server\n");
      const loaded = loadConfig({ NIGHTSHIFT_HOME: dir.path, NIGHTSHIFT_DATABASE_URL: db.url });
      const check = async () => formatChecks(await checkStore(loaded, 5000));

      assert.match(await check(), /^✓ shared store \(NIGHTSHIFT_DATABASE_URL\) answers; it holds no Nightshift schema yet: the next `nightshift start` creates it .*this machine is home-server$/);
      await (await connectPg(db.url)).end();
      assert.match(await check(), new RegExp(`^✓ shared store \\(NIGHTSHIFT_DATABASE_URL\\) answers, schema version ${SCHEMA_VERSION} \\(this Nightshift's\\); this machine is home-server$`));
      await sql`UPDATE nightshift_schema SET version = ${SCHEMA_VERSION - 1}`;
      assert.match(await check(), /^! .*older than this Nightshift's .*: the next `nightshift start` here migrates it\n\s+fix: update Nightshift on the other machines/);
      await sql`UPDATE nightshift_schema SET version = ${SCHEMA_VERSION + 1}`;
      assert.match(await check(), new RegExp(`^✗ .*schema version ${SCHEMA_VERSION + 1} is newer than this Nightshift's ${SCHEMA_VERSION}.*\\n\\s+fix: update Nightshift on this machine`));
    } finally {
      await sql.end({ timeout: 1 });
      await db.drop();
    }
  });

  it("says a store that does not answer by its setting, never printing the URL or its password", async () => {
    const url = `postgres://nightshift:s3cret-pw@127.0.0.1:${await freePort()}/nightshift`;
    const home = join(dir.path, "down");
    const result = await nightshift(["doctor"], { ...process.env, NIGHTSHIFT_HOME: home, NIGHTSHIFT_DATABASE_URL: url, ANTHROPIC_BASE_URL: "http://127.0.0.1:9" });
    assert.equal(result.code, 1);
    assert.match(result.stdout, /✗ shared store \(NIGHTSHIFT_DATABASE_URL\) does not answer: .*\n\s+fix: check that PostgreSQL runs and that NIGHTSHIFT_DATABASE_URL names it/);
    assert.doesNotMatch(result.stdout + result.stderr, /s3cret-pw|postgres:\/\//);
  });
});
