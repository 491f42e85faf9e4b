import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { agent, nightshift, until } from "./support/cli.ts";
import { noDatabase, startMachines, type Machine } from "./support/cluster.ts";
import { needs } from "./support/prerequisites.ts";

/**
 * Several machines run one permission policy and one set of MCP servers: real daemons, two
 * homes, one PostgreSQL. A change made in one machine's config.yaml reaches the other's within
 * seconds and takes effect there without a restart.
 */

const skip = noDatabase ? { skip: noDatabase } : {};
const PACKAGES = join(import.meta.dirname, "..", "node_modules", "@modelcontextprotocol");
const memoryServer = JSON.stringify({ command: process.execPath, args: [join(PACKAGES, "server-memory", "dist", "index.js")] });

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

/** A task pinned to `machine` (its workdir is a folder there); resolves with its result file's text. */
async function runOn(machine: Machine, name: string): Promise<string> {
  const folder = join(machine.home, "..", `${machine.name}-project`);
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(machine.home, "inbox", `${name}.md`), `---\ntitle: ${name}\nworkdir: ${folder}\n---\nTell the date.\n`);
  const result = join(machine.home, "outbox", `${name}.md`);
  await until(() => existsSync(result), `${name}'s result on ${machine.name}`, 60_000);
  return readFileSync(result, "utf8");
}

const traceEvents = (machine: Machine, event: string) =>
  readFileSync(join(machine.home, "logs", "trace.jsonl"), "utf8").split("\n").filter((line) => line.includes(`"event":"${event}"`)).map((line) => JSON.parse(line) as Record<string, unknown>);

describe("the permission policy and MCP servers on several machines", noDatabase ? skip : needs("bwrap", "socat"), () => {
  it("denies a command on m2 within seconds of the rule being written in m1's config.yaml, and refuses a bad policy without stopping", async () => {
    const cluster = await startMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    const [m1, m2] = cluster.machines as [Machine, Machine];
    cluster.api.respondWith(agent("echo it-is-today"));
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    assert.match(await runOn(m2, "before"), /finished after: it-is-today/, "allowed before the change");

    appendFileSync(join(m1.home, "config.yaml"), "# no echoing on any machine\npermissions:\n  deny:\n    - command: \"echo it-is-*\"\n");
    // A heartbeat (5 s) at most, and at once on m1's notification.
    await until(() => readFileSync(join(m2.home, "config.yaml"), "utf8").includes("echo it-is-*"), "m1's rule in m2's config.yaml", 15_000);
    const m2Config = readFileSync(join(m2.home, "config.yaml"), "utf8");
    assert.match(m2Config, /^machine: m2\n/, "m2's own settings stay");
    assert.match(m2Config, /# no echoing on any machine/, "with m1's comment");
    await until(() => m2.daemon!.output().includes("applied, from machine m1's config.yaml: the permission policy"), "m2 to say it applied the policy", 15_000);
    assert.match(m2.daemon!.output(), /config\.yaml: permissions and mcp taken from machine m1 \(version \d+\); the rest of the file is as it was, and the previous file is at \S+state\/config-history\/config\.yaml\.m2-\d+/);
    assert.match(await runOn(m2, "after"), /finished after: Denied: .*echo it-is-today.*config permissions\.deny\[0\]/, "the next session on m2 runs under m1's rule");

    // Another machine's policy that does not validate here (written by a newer Nightshift, say): refused, said, and m2 runs on.
    const [row] = await cluster.sql<{ version: string }[]>`SELECT version FROM shared_files WHERE path = '@settings/config.yaml'`;
    await cluster.sql`UPDATE shared_files SET content = ${Buffer.from("permissions:\n  deny:\n    - comand: echo\n")}, version = nextval('shared_files_version'), machine = 'm9' WHERE path = '@settings/config.yaml' AND version = ${row!.version}`;
    await until(() => m2.daemon!.output().includes("REFUSED the shared permissions and mcp settings from machine m9"), "m2 to refuse m9's settings", 15_000);
    assert.match(m2.daemon!.output(), /setting `permissions\.deny\.0\.comand`: .*Fix it in config\.yaml on m9/);
    assert.match(await runOn(m2, "still"), /finished after: Denied:/, "m2 keeps m1's policy");
    assert.equal(m2.daemon!.child.exitCode, null, "still running");
    const status = await nightshift(["status"], m2.env);
    assert.match(status.stdout, /\nshared settings \(permissions, mcp\): from machine m1's config\.yaml \(version \d+, [^)]+\); refused version \d+ from machine m9/);
    const doctor = await nightshift(["doctor"], m2.env);
    assert.match(doctor.stdout + doctor.stderr, /shared settings \(permissions, mcp\): from machine m1's config\.yaml \(version \d+, .*refused version \d+ from machine m9/);
  });

  it("starts an MCP server added in m1's config.yaml for the next session on m2, without a restart", async () => {
    const cluster = await startMachines(["m1", "m2"]);
    cleanup = cluster.cleanup;
    const [m1, m2] = cluster.machines as [Machine, Machine];
    cluster.api.respondWith(agent("echo hello"));
    await Promise.all(cluster.machines.map((machine) => machine.start()));
    appendFileSync(join(m1.home, "config.yaml"), `mcp:\n  servers:\n    notes: ${memoryServer}\n`);
    await until(() => m2.daemon!.output().includes("the MCP servers notes (started afresh for sessions that start from now on"), "m2 to apply the new servers", 15_000);
    await runOn(m2, "with-notes");
    // The server started on m2: its tools are new, so they wait for the person's approval.
    const withheld = traceEvents(m2, "mcp_tools_withheld");
    assert.deepEqual(withheld.map((event) => event.server), ["notes"]);
    const list = await nightshift(["mcp", "list"], m2.env);
    assert.match(list.stdout, /notes/);
    assert.match(list.stdout, /withheld until approved: nightshift mcp approve notes/);

    // Approved on m1 (a machine where no session used it yet): m2's next session is offered its tools.
    const approved = await nightshift(["mcp", "approve", "notes"], m1.env);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /^notes: pinned \d+ tools/);
    const relisted = await nightshift(["mcp", "list", "notes"], m2.env);
    assert.doesNotMatch(relisted.stdout, /withheld until approved|\+ new|! changed/, relisted.stdout);
    assert.match(relisted.stdout, /✓ pinned +create_entities/);
    const before = cluster.api.requests.length;
    await runOn(m2, "notes-approved");
    const system = JSON.stringify(cluster.api.requests.slice(before).map((request) => request.body.system));
    assert.match(system, /# Tools from MCP servers.*- notes \(\d+ tools\): /, "m2's session is offered the notes tools");
    assert.equal(traceEvents(m2, "mcp_tools_withheld").length, 1, "and asks nothing again");
  });
});
