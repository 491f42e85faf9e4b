import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connectPg, type Sql } from "../runtime/store/pg.ts";
import { sharedFiles, type SharedFiles } from "../runtime/store/pg-files.ts";
import { createFileSync, MAX_SHARED_BYTES, type FileSync } from "../tasks/shared-files.ts";
import { freshDatabase, noDatabase } from "./support/cluster.ts";
import { tempDir } from "./support/home.ts";

/** Two homes on one fresh database, each with its own sync, as two machines hold them. */
describe("files every machine holds alike (identity, memory, specialists, skills)", noDatabase ? { skip: noDatabase } : {}, () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let sql: Sql;
  const dir = tempDir("nightshift-shared-");
  let time = Date.parse("2026-12-02T10:00:00Z");
  const DEFAULT_IDENTITY = "# Identity\n\nYou are Nightshift.\n";
  const machine = (name: string): { home: string; sync: FileSync } => {
    const home = join(dir.path, name);
    mkdirSync(join(home, "agents"), { recursive: true });
    mkdirSync(join(home, "state"), { recursive: true });
    writeFileSync(join(home, "IDENTITY.md"), DEFAULT_IDENTITY);
    return { home, sync: createFileSync({ home, files: sharedFiles(sql, name), machine: name, now: () => (time += 1000), defaults: new Map([["IDENTITY.md", DEFAULT_IDENTITY]]) }) };
  };
  let m1: ReturnType<typeof machine>;
  let m2: ReturnType<typeof machine>;

  before(async () => {
    db = await freshDatabase();
    sql = await connectPg(db.url);
    m1 = machine("m1");
    m2 = machine("m2");
  });
  after(async () => {
    await sql?.end({ timeout: 1 });
    await db?.drop();
    dir.cleanup();
  });

  it("gives a joining machine the store's files, taking a default file without keeping it", async () => {
    writeFileSync(join(m1.home, "IDENTITY.md"), "# Identity\n\nYou are Nightshift, and you answer in French.\n");
    writeFileSync(join(m1.home, "MEMORY.md"), "# Memory\n\n- The build needs Node 24.\n");
    mkdirSync(join(m1.home, "skills", "deploy"), { recursive: true });
    writeFileSync(join(m1.home, "skills", "deploy", "SKILL.md"), "---\nname: deploy\n---\nSteps.\n");
    writeFileSync(join(m1.home, "skills", "deploy", ".SKILL.md.swp"), "an editor's swap file");
    const first = await m1.sync.sync();
    assert.deepEqual(first.sent.sort(), ["IDENTITY.md", "MEMORY.md", "skills/deploy/SKILL.md"]);

    const joined = await m2.sync.sync();
    assert.deepEqual(joined.received.sort(), ["IDENTITY.md", "MEMORY.md", "skills/deploy/SKILL.md"]);
    assert.deepEqual(joined.conflicts, [], "its IDENTITY.md was the default: nothing to keep");
    assert.match(readFileSync(join(m2.home, "IDENTITY.md"), "utf8"), /French/);
    assert.equal(existsSync(join(m2.home, "skills", "deploy", ".SKILL.md.swp")), false, "hidden files stay on their machine");
    assert.deepEqual(await m2.sync.sync(), { sent: [], received: [], conflicts: [], tooLarge: [] }, "nothing changed: nothing to do");
  });

  it("takes a change made on one machine to the other, and a removal too", async () => {
    writeFileSync(join(m2.home, "MEMORY.md"), "# Memory\n\n- The build needs Node 24.\n- Tests run with node --test.\n");
    assert.deepEqual((await m2.sync.sync()).sent, ["MEMORY.md"]);
    assert.deepEqual((await m1.sync.sync()).received, ["MEMORY.md"]);
    assert.match(readFileSync(join(m1.home, "MEMORY.md"), "utf8"), /node --test/);

    rmSync(join(m1.home, "skills", "deploy", "SKILL.md"));
    assert.deepEqual((await m1.sync.sync()).sent, ["skills/deploy/SKILL.md"]);
    assert.deepEqual((await m2.sync.sync()).received, ["skills/deploy/SKILL.md"]);
    assert.equal(existsSync(join(m2.home, "skills", "deploy", "SKILL.md")), false);
  });

  it("keeps the losing side of two changes at once under state/shared-conflicts/, and says so", async () => {
    writeFileSync(join(m1.home, "agents", "reviewer.md"), "m1's reviewer\n");
    writeFileSync(join(m2.home, "agents", "reviewer.md"), "m2's reviewer\n");
    await m1.sync.sync();
    const report = await m2.sync.sync();
    assert.equal(report.conflicts.length, 1);
    assert.equal(report.conflicts[0]!.path, "agents/reviewer.md");
    assert.equal(report.conflicts[0]!.from, "m1");
    assert.equal(readFileSync(join(m2.home, "agents", "reviewer.md"), "utf8"), "m1's reviewer\n");
    assert.equal(readFileSync(report.conflicts[0]!.keptAt, "utf8"), "m2's reviewer\n", "nothing is lost");
    assert.deepEqual(readdirSync(join(m2.home, "state", "shared-conflicts", "agents")).length, 1);

    // Both edit again after agreeing: the one that writes second finds the first's and keeps its own aside.
    writeFileSync(join(m1.home, "agents", "reviewer.md"), "m1's second reviewer\n");
    writeFileSync(join(m2.home, "agents", "reviewer.md"), "m2's second reviewer\n");
    await m2.sync.sync();
    const again = await m1.sync.sync();
    assert.deepEqual(again.conflicts.map((conflict) => conflict.from), ["m2"]);
    assert.equal(readFileSync(join(m1.home, "agents", "reviewer.md"), "utf8"), "m2's second reviewer\n");
  });

  it("writes nothing a row names outside the shared files (a `..` path, a hidden file)", async () => {
    for (const path of ["../outside.md", "agents/../../outside.md", "skills/.hidden", "config.yaml"]) {
      await sql`INSERT INTO shared_files (path, content, version, machine) VALUES (${path}, ${Buffer.from("x")}, nextval('shared_files_version'), 'elsewhere')`;
    }
    await m2.sync.sync();
    assert.equal(existsSync(join(dir.path, "outside.md")), false);
    assert.equal(existsSync(join(m2.home, "skills", ".hidden")), false);
    assert.equal(existsSync(join(m2.home, "config.yaml")), false);
  });

  it("leaves out a file over the size limit and says it once", async () => {
    writeFileSync(join(m1.home, "skills", "data.bin"), Buffer.alloc(MAX_SHARED_BYTES + 1));
    assert.deepEqual((await m1.sync.sync()).tooLarge, ["skills/data.bin"]);
    assert.deepEqual((await m1.sync.sync()).tooLarge, []);
    await m2.sync.sync();
    assert.equal(existsSync(join(m2.home, "skills", "data.bin")), false);
  });
});

describe("two machines joining at once", noDatabase ? { skip: noDatabase } : {}, () => {
  it("agrees at once on a file both wrote alike, so an edit right after is no conflict (the CI flake of cluster.test.ts)", async () => {
    const db = await freshDatabase();
    const sql = await connectPg(db.url);
    const dir = tempDir("nightshift-joining-");
    try {
      const DEFAULT = "# Identity\n\nYou are Nightshift.\n";
      const machine = (name: string, files: SharedFiles) => {
        const home = join(dir.path, name);
        mkdirSync(join(home, "state"), { recursive: true });
        writeFileSync(join(home, "IDENTITY.md"), DEFAULT);
        return { home, sync: createFileSync({ home, files, machine: name, now: () => Date.now(), defaults: new Map([["IDENTITY.md", DEFAULT]]) }) };
      };
      const m1 = machine("m1", sharedFiles(sql, "m1"));
      // m2's first write of init's IDENTITY.md comes just after m1's: m1 wins it.
      const m2files = sharedFiles(sql, "m2");
      const m2 = machine("m2", { ...m2files, put: async (path, content, base) => (await m1.sync.sync(), m2files.put(path, content, base)) });
      const first = await m2.sync.sync();
      assert.deepEqual(first.sent, [], "m1 wrote it first");

      // Edited on m2 before anything else happens: it is m2's change, not a conflict.
      writeFileSync(join(m2.home, "IDENTITY.md"), "# Identity\n\nAnswer in French.\n");
      const edited = await m2.sync.sync();
      assert.deepEqual(edited.conflicts, []);
      assert.deepEqual(edited.sent, ["IDENTITY.md"]);
      assert.deepEqual((await m1.sync.sync()).received, ["IDENTITY.md"]);
      assert.match(readFileSync(join(m1.home, "IDENTITY.md"), "utf8"), /French/);
    } finally {
      await sql.end({ timeout: 1 });
      await db.drop();
      dir.cleanup();
    }
  });
});
