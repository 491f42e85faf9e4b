import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseConfigText } from "../runtime/config.ts";
import { settingsHash, sharedSection, withSharedSection } from "../runtime/shared-settings.ts";
import { connectPg, type Sql } from "../runtime/store/pg.ts";
import { sharedFiles } from "../runtime/store/pg-files.ts";
import { createSettingsSync, describeSettings, readSettingsState, SETTINGS_PATH, type SettingsSync } from "../tasks/shared-settings.ts";
import { freshDatabase, noDatabase } from "./support/cluster.ts";
import { tempDir } from "./support/home.ts";

const M1_CONFIG = `# m1, the home server
machine: m1 # its name on the store
dashboard:
  port: 7421
# what every machine may do
permissions:
  # pushing is for people
  deny:
    - command: git push
`;

describe("the shared part of config.yaml, as text", () => {
  it("takes permissions and mcp with their comments, and leaves the rest of the receiving file as written", () => {
    const section = sharedSection(M1_CONFIG);
    assert.match(section, /# pushing is for people/);
    assert.doesNotMatch(section, /^(machine|dashboard):/m);
    const m2 = "# the laptop\nmachine: m2   # mine\nmcp:\n  servers: {}\ndashboard:\n  port: 7422 # not 7420\n";
    const merged = withSharedSection(m2, section);
    assert.match(merged, /^# the laptop\nmachine: m2 +# mine\n/);
    assert.match(merged, /port: 7422 # not 7420/);
    assert.match(merged, /# pushing is for people\n  deny:\n    - command: git push/);
    assert.doesNotMatch(merged, /mcp:/, "a shared setting the section lacks means its defaults");
    const config = parseConfigText(merged, "config.yaml");
    assert.equal(config.machine, "m2");
    assert.deepEqual(config.permissions.deny, [{ command: "git push" }]);
  });

  it("writes a section that uses anchors as plain values, so it reads the same on a machine without them", () => {
    const text = "hosts: &hosts\n  - network: example.com\npermissions:\n  allow: *hosts\n";
    assert.throws(() => parseConfigText(text, "config.yaml"), /hosts/, "(an unknown key here, but an anchor may sit anywhere)");
    const section = sharedSection(text);
    assert.doesNotMatch(section, /\*hosts/);
    assert.deepEqual(parseConfigText(section, "section").permissions.allow, [{ network: "example.com" }]);
  });

  it("gives one fingerprint to settings that mean the same, however written", () => {
    const a = parseConfigText("permissions:\n  deny: [{ command: git push }]\n  defaults: true\n", "a");
    const b = parseConfigText("permissions:\n  deny:\n    - command: git push\nmcp: {}\n", "b");
    assert.equal(settingsHash(a), settingsHash(b));
    assert.notEqual(settingsHash(a), settingsHash(parseConfigText("", "c")));
  });
});

/** Two homes on one fresh database, each with its own settings sync, as two machines hold them. */
describe("the permission policy and MCP servers every machine runs alike", noDatabase ? { skip: noDatabase } : {}, () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let sql: Sql;
  const dir = tempDir("nightshift-settings-");
  let time = Date.parse("2026-12-02T10:00:00Z");
  const machine = (name: string, config: string): { home: string; sync: SettingsSync; config(): string; write(text: string): void } => {
    const home = join(dir.path, name);
    mkdirSync(join(home, "state"), { recursive: true });
    writeFileSync(join(home, "config.yaml"), config);
    const running = settingsHash(parseConfigText(config, "config.yaml"));
    return {
      home,
      sync: createSettingsSync({ home, files: sharedFiles(sql, name), machine: name, now: () => (time += 1000), running }),
      config: () => readFileSync(join(home, "config.yaml"), "utf8"),
      write: (text) => writeFileSync(join(home, "config.yaml"), text),
    };
  };
  let m1: ReturnType<typeof machine>;
  let m2: ReturnType<typeof machine>;

  before(async () => {
    db = await freshDatabase();
    sql = await connectPg(db.url);
    m1 = machine("m1", M1_CONFIG);
    m2 = machine("m2", "# the laptop\nmachine: m2\n");
  });
  after(async () => {
    await sql?.end({ timeout: 1 });
    await db?.drop();
    dir.cleanup();
  });

  it("publishes one machine's policy, and a machine that names none takes it without a conflict, keeping its own settings and comments", async () => {
    const joinedFirst = await m2.sync.sync();
    assert.deepEqual(joinedFirst, {}, "nothing in the store yet, and m2 has no opinion: it publishes nothing");
    assert.match(describeSettings(readSettingsState(m2.home), "m2"), /^the defaults on every machine \(no machine's config\.yaml sets permissions or mcp/);
    const first = await m1.sync.sync();
    assert.equal(typeof first.sent, "number");
    assert.equal(first.settings, undefined, "m1 runs what it started with");

    const joined = await m2.sync.sync();
    assert.equal(joined.received?.from, "m1");
    assert.equal(joined.conflict, undefined);
    assert.deepEqual(joined.settings?.permissions.deny, [{ command: "git push" }], "the daemon applies it");
    assert.match(m2.config(), /^# the laptop\nmachine: m2\n/);
    assert.match(m2.config(), /# pushing is for people/);
    assert.equal(readFileSync(joined.received!.previous, "utf8"), "# the laptop\nmachine: m2\n", "the previous file is kept");
    assert.deepEqual(await m2.sync.sync(), {}, "nothing changed: nothing to do");
    assert.match(describeSettings(readSettingsState(m2.home), "m2"), /^from machine m1's config\.yaml \(version \d+, 2026-12-02 /);
  });

  it("takes a change made in one machine's config.yaml to the other", async () => {
    m2.write(`${m2.config()}mcp:\n  servers:\n    notes:\n      command: node\n      args: [server.js]\n`);
    const sent = await m2.sync.sync();
    assert.equal(typeof sent.sent, "number");
    assert.deepEqual(Object.keys(sent.settings!.mcp.servers), ["notes"], "applied here too");
    const got = await m1.sync.sync();
    assert.equal(got.received?.from, "m2");
    assert.deepEqual(Object.keys(got.settings!.mcp.servers), ["notes"]);
    assert.match(m1.config(), /^# m1, the home server\nmachine: m1 # its name on the store\ndashboard:\n  port: 7421\n/, "m1's own settings stay");
  });

  it("agrees without writing when the other machine's settings mean the same", async () => {
    const before = m1.config();
    m1.write(before.replace("- command: git push", "- { command: git push }"));
    assert.deepEqual(await m1.sync.sync(), {}, "the same policy: nothing to publish");
  });

  it("keeps this machine's whole config.yaml under state/shared-conflicts/ when both changed it, and takes the one written first", async () => {
    m1.write(m1.config().replace("git push", "npm publish"));
    m2.write(m2.config().replace("git push", "docker push"));
    await m1.sync.sync();
    const report = await m2.sync.sync();
    assert.equal(report.conflict?.from, "m1");
    assert.match(readFileSync(report.conflict!.keptAt, "utf8"), /docker push/, "nothing is lost");
    assert.match(m2.config(), /npm publish/);
    assert.deepEqual(report.settings?.permissions.deny, [{ command: "npm publish" }]);
    assert.deepEqual(readdirSync(join(m2.home, "state", "shared-conflicts")).length, 1);
  });

  it("refuses another machine's settings that do not validate here, naming the machine, the setting and the fix, once", async () => {
    const before = m2.config();
    const [row] = await sql<{ version: string }[]>`SELECT version FROM shared_files WHERE path = ${SETTINGS_PATH}`;
    await sql`UPDATE shared_files SET content = ${Buffer.from("permissions:\n  allow:\n    - network: https://example.com\n")}, version = nextval('shared_files_version'), machine = 'm3' WHERE path = ${SETTINGS_PATH} AND version = ${row!.version}`;
    const report = await m2.sync.sync();
    assert.equal(report.refused?.from, "m3");
    assert.match(report.refused!.message, /the shared settings from machine m3:3: setting `permissions\.allow\.0\.network`: network pattern "https:\/\/example\.com" has a scheme/);
    assert.match(report.refused!.message, /Fix it in config\.yaml on m3/);
    assert.equal(m2.config(), before, "config.yaml untouched");
    assert.equal(report.settings, undefined, "it runs on its own");
    assert.deepEqual(await m2.sync.sync(), {}, "said once");
    assert.match(describeSettings(readSettingsState(m2.home), "m2"), /refused version \d+ from machine m3/);

    // A change made here after that is published over the refused one.
    m2.write(before.replace("npm publish", "cargo publish"));
    assert.equal(typeof (await m2.sync.sync()).sent, "number");
    assert.deepEqual((await m1.sync.sync()).settings?.permissions.deny, [{ command: "cargo publish" }]);
  });

  it("never publishes a secret written into an MCP server, and refuses one another machine published", async () => {
    const before = m1.config();
    m1.write(before.replace("command: node", "command: node\n      env:\n        GITHUB_TOKEN: ghp_abcdefghijklmnopqrstuvwxyz0123456789"));
    const report = await m1.sync.sync();
    assert.equal(report.sent, undefined);
    assert.match(report.unpublished!, /secrets never leave this machine: `mcp\.servers\.notes\.env\.GITHUB_TOKEN` looks like a GitHub token: move it to NIGHTSHIFT_HOME\/\.env/);
    assert.doesNotMatch(report.unpublished!, /ghp_/, "the value is never said");
    const [stored] = await sql<{ content: Buffer }[]>`SELECT content FROM shared_files WHERE path = ${SETTINGS_PATH}`;
    assert.doesNotMatch(stored!.content.toString(), /ghp_/);
    assert.equal((await m1.sync.sync()).unpublished, undefined, "said once");
    m1.write(before);
    await m1.sync.sync();

    const [row] = await sql<{ version: string }[]>`SELECT version FROM shared_files WHERE path = ${SETTINGS_PATH}`;
    await sql`UPDATE shared_files SET content = ${Buffer.from("mcp:\n  servers:\n    x:\n      command: node\n      env:\n        API_TOKEN: sk-abcdefghijklmnopqrstuvwxyz\n")}, version = nextval('shared_files_version'), machine = 'm3' WHERE path = ${SETTINGS_PATH} AND version = ${row!.version}`;
    const refused = await m2.sync.sync();
    assert.match(refused.refused!.message, /looks like an API key/);
    assert.doesNotMatch(m2.config(), /sk-abc/);
  });

  it("says once that this machine's config.yaml does not validate, and neither publishes nor takes in while it does not", async () => {
    m2.write("permissions:\n  deny:\n    - comand: git push\n");
    const report = await m2.sync.sync();
    assert.match(report.unpublished!, /setting `permissions\.deny\.0\.comand`/);
    assert.match(report.unpublished!, /neither publishes its shared settings \(permissions, mcp\) nor takes in other machines'/);
    assert.deepEqual(await m2.sync.sync(), {});
    assert.equal(existsSync(join(m2.home, "config.yaml")), true);
  });
});
