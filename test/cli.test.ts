import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { nightshift } from "./support/cli.ts";
import { tempDir } from "./support/home.ts";
import { startBotApi } from "./support/bot-api.ts";
import { startMessagesApi, type MessagesApi } from "./support/messages-api.ts";
import { needs } from "./support/prerequisites.ts";

const KEY = "sk-ant-cli-test-secret-0123456789";


function assertNoStack(text: string) {
  assert.doesNotMatch(text, /\n\s+at .+:\d+:\d+/, `no stack trace expected in:\n${text}`);
}

let api: MessagesApi;
let dir: ReturnType<typeof tempDir>;
let env: NodeJS.ProcessEnv;
let home: string;

before(async () => {
  api = await startMessagesApi();
  dir = tempDir();
  home = join(dir.path, "home");
  const { ANTHROPIC_API_KEY: _a, ANTHROPIC_BASE_URL: _b, ...rest } = process.env;
  env = { ...rest, NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: api.url, ANTHROPIC_API_KEY: KEY };
});
after(async () => {
  await api.close();
  dir.cleanup();
});

describe("nightshift init", () => {
  it("creates the home with its folders and defaults, and never overwrites on a second run", async () => {
    const first = await nightshift(["init"], env);
    assert.equal(first.code, 0, first.stderr);
    for (const folder of ["agents", "inbox", "outbox", "schedules", "workspace", "state", "sessions", "journal", "memory-history"]) {
      assert.ok(existsSync(join(home, folder)), `${folder}/ exists`);
    }
    assert.match(readFileSync(join(home, "IDENTITY.md"), "utf8"), /^# Identity/);
    writeFileSync(join(home, "IDENTITY.md"), "# Identity\nMine.\n");
    const second = await nightshift(["init"], env);
    assert.equal(second.code, 0);
    assert.match(second.stdout, /kept as they were: .*IDENTITY.md/);
    assert.equal(readFileSync(join(home, "IDENTITY.md"), "utf8"), "# Identity\nMine.\n");
  });
});

describe("nightshift run", () => {
  it("prints the answer on stdout, progress on stderr, and exits 0", async () => {
    api.script({ content: [{ type: "text", text: "Hello from the stand-in." }] });
    const result = await nightshift(["run", "Say hello"], env);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "Hello from the stand-in.\n");
    assert.match(result.stderr, /▶ Say hello/);
    assert.match(result.stderr, /■ done/);
  });

  it("writes a trace with tokens and cost, and never the API key", async () => {
    const trace = readFileSync(join(home, "logs", "trace.jsonl"), "utf8");
    const response = trace.split("\n").filter(Boolean).map((line) => JSON.parse(line)).find((entry) => entry.event === "model_response");
    assert.ok(response, "a model_response entry");
    assert.equal(typeof response.input_tokens, "number");
    assert.equal(typeof response.cost_usd, "number");
    assert.equal(typeof response.latency_ms, "number");
    assert.ok(!trace.includes(KEY), "the key is not in the trace");
    const sessions = readFileSync(join(home, "sessions", readdirOne(join(home, "sessions"))), "utf8");
    assert.ok(!sessions.includes(KEY), "the key is not in the session log");
  });

  it("exits 1 with the reason when the task fails", async () => {
    api.script({ error: { status: 401, type: "authentication_error", message: "invalid x-api-key" } });
    const result = await nightshift(["run", "Say hello"], env);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /task failed: model request failed: .*rejected the API key/);
    assertNoStack(result.stderr);
  });

  it("exits 2 naming the file, line and field of a bad task file", async () => {
    const file = join(dir.path, "bad task.md");
    writeFileSync(file, "---\ntitle: Audit\nbugdet: { max_usd: 1 }\n---\nDo it.\n");
    const result = await nightshift(["run", file], env);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, `nightshift: ${file}:3: bugdet: unknown key \`bugdet\`; did you mean \`budget\`?\n`);
  });

  it("exits 2 when the API key is missing, saying how to set it", async () => {
    const { ANTHROPIC_API_KEY: _key, ...noKey } = env;
    const result = await nightshift(["run", "Say hello"], { ...noKey, ANTHROPIC_BASE_URL: "https://api.example.com" });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /ANTHROPIC_API_KEY is not set: the `main` model role needs an API key\. Set it in your shell or in NIGHTSHIFT_HOME\/\.env/);
    assertNoStack(result.stderr);
  });

  it("exits 2 for a config.yaml setting it cannot accept, naming the line and setting", async () => {
    const badHome = join(dir.path, "bad-home");
    mkdirSync(badHome);
    writeFileSync(join(badHome, "config.yaml"), "budget:\n  max_usd: lots\n");
    const result = await nightshift(["run", "Say hello"], { ...env, NIGHTSHIFT_HOME: badHome });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /config\.yaml:2: setting `budget\.max_usd`: .*expected number/);
    assertNoStack(result.stderr);
  });

  it("exits 2 for an unknown command or a missing session", async () => {
    const unknown = await nightshift(["fly"], env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "fly"/);
    const missing = await nightshift(["run", "--resume", "nope"], env);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no session nope in .*sessions/);
  });
});

describe("nightshift doctor", () => {
  it("reports each check, with reachable endpoints and a working sandbox", needs("bwrap", "socat"), async () => {
    const result = await nightshift(["doctor"], env);
    assert.match(result.stdout, /✓ Node v2\d/);
    assert.match(result.stdout, /✓ sandbox works \(bwrap, sandbox\.mode: auto\)/);
    assert.match(result.stdout, /✓ socat found/);
    assert.match(result.stdout, new RegExp(`✓ main, specialist, small → ${api.url.replace(/\./g, "\\.")}: reachable`));
    assert.equal(result.code, 0, result.stdout);
  });

  it("names the srt backend when sandbox.mode picks it, and so does every session's trace", needs("srt"), async () => {
    const srtHome = join(dir.path, "srt-home");
    mkdirSync(srtHome);
    writeFileSync(join(srtHome, "config.yaml"), "sandbox:\n  mode: srt\n");
    const result = await nightshift(["doctor"], { ...env, NIGHTSHIFT_HOME: srtHome });
    assert.match(result.stdout, /✓ sandbox works \(srt, sandbox\.mode: srt\)/);
    api.script({ content: [{ type: "text", text: "ok" }] });
    const run = await nightshift(["run", "hello"], { ...env, NIGHTSHIFT_HOME: srtHome });
    assert.equal(run.code, 0, run.stderr);
    const trace = readFileSync(join(srtHome, "logs", "trace.jsonl"), "utf8");
    assert.match(trace, /"event":"session_start".*"sandbox":"srt"/);
  });

  it("says what to do when the home is missing and the endpoint is down", async () => {
    const result = await nightshift(["doctor"], { ...env, NIGHTSHIFT_HOME: join(dir.path, "nowhere"), ANTHROPIC_BASE_URL: "http://127.0.0.1:9" });
    assert.equal(result.code, 1);
    assert.match(result.stdout, /✗ .*nowhere does not exist\n\s+fix: run `nightshift init`/);
    assert.match(result.stdout, /✗ .*not reachable/);
  });

  it("checks the Telegram token with getMe and says when nobody is paired, never printing the token", async () => {
    const telegram = await startBotApi({ token: "777:doctor-token", botUsername: "doctor_bot" });
    try {
      const good = await nightshift(["doctor"], { ...env, TELEGRAM_BOT_TOKEN: "777:doctor-token", TELEGRAM_API_ROOT: telegram.url });
      assert.match(good.stdout, /✓ Telegram bot @doctor_bot/);
      assert.match(good.stdout, /! nobody is paired with the Telegram bot\n\s+fix: run `nightshift pair`/);
      const bad = await nightshift(["doctor"], { ...env, TELEGRAM_BOT_TOKEN: "777:wrong-token", TELEGRAM_API_ROOT: telegram.url });
      assert.match(bad.stdout, /✗ Telegram refuses TELEGRAM_BOT_TOKEN/);
      for (const output of [good.stdout, good.stderr, bad.stdout, bad.stderr]) assert.ok(!output.includes("doctor-token") && !output.includes("wrong-token"));
    } finally {
      await telegram.close();
    }
  });

  it("flags a sandbox turned off in config, and so does every session", async () => {
    const offHome = join(dir.path, "off-home");
    mkdirSync(offHome);
    writeFileSync(join(offHome, "config.yaml"), "sandbox:\n  mode: off\n");
    const result = await nightshift(["doctor"], { ...env, NIGHTSHIFT_HOME: offHome });
    assert.match(result.stdout, /! SANDBOX IS OFF/);
    api.script({ content: [{ type: "text", text: "ok" }] });
    const run = await nightshift(["run", "hello"], { ...env, NIGHTSHIFT_HOME: offHome });
    assert.match(run.stderr, /! SANDBOX IS OFF \(config sandbox\.mode\): commands run unconfined/);
    const trace = readFileSync(join(offHome, "logs", "trace.jsonl"), "utf8");
    assert.match(trace, /"level":40.*SANDBOX IS OFF/);
  });
});

describe("nightshift doctor on a damaged journal", () => {
  it("names each journal line that does not read, and keeps it", async () => {
    const journalHome = join(dir.path, "journal-home");
    mkdirSync(join(journalHome, "journal"), { recursive: true });
    const good = JSON.stringify({ at: 1, kind: "note", session: "s1", source: "user", text: "keep me", trusted: true });
    writeFileSync(join(journalHome, "journal", "2026-11-24.jsonl"), `${good}\n{"at":1,"kind":"no\n${good}\n`);
    const result = await nightshift(["doctor"], { ...env, NIGHTSHIFT_HOME: journalHome });
    assert.match(result.stdout, /! .*journal\/2026-11-24\.jsonl line 2 does not read \(not JSON.*\): memory skips it\n\s+fix: fix or remove the line by hand/);
    assert.equal(readFileSync(join(journalHome, "journal", "2026-11-24.jsonl"), "utf8"), `${good}\n{"at":1,"kind":"no\n${good}\n`);
  });
});

describe("nightshift memory and digest", () => {
  const outerEnv = () => env;
  it("shows the memory, says when there is nothing to undo or consolidate, and prints the digest without a daemon", async () => {
    const fresh = join(dir.path, "memory-home");
    mkdirSync(fresh);
    const env = { ...outerEnv(), NIGHTSHIFT_HOME: fresh };
    const show = await nightshift(["memory", "show"], env);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /Memory: 0 entries, 0\.0 of 12 KB/);
    const undo = await nightshift(["memory", "undo"], env);
    assert.match(undo.stdout, /There is no earlier version of MEMORY\.md/);
    const consolidate = await nightshift(["memory", "consolidate"], env);
    assert.match(consolidate.stdout, /Nothing new in the journal since the last run, so no model call/);
    const digest = await nightshift(["digest"], env);
    assert.equal(digest.code, 0, digest.stderr);
    assert.match(digest.stdout, /Digest/);
    assert.match(digest.stdout, /Spend: today/);
    // A damaged task state concerns the digest, not the memory: undo and show still work.
    mkdirSync(join(fresh, "state"), { recursive: true });
    writeFileSync(join(fresh, "state", "nightshift.db"), "not a database at all, just some bytes that are long enough");
    const showDamaged = await nightshift(["memory", "show"], env);
    assert.equal(showDamaged.code, 0, showDamaged.stderr);
    const undoDamaged = await nightshift(["memory", "undo"], env);
    assert.equal(undoDamaged.code, 0, undoDamaged.stderr);
    const bad = await nightshift(["memory", "forget"], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /usage: nightshift memory consolidate\|undo\|show/);
  });
});

describe("nightshift config schema", () => {
  it("prints the JSON Schema generated from the config schema", async () => {
    const result = await nightshift(["config", "schema"], env);
    assert.equal(result.code, 0);
    const schema = JSON.parse(result.stdout);
    assert.equal(schema.type, "object");
    assert.equal(schema.additionalProperties, false);
    assert.ok(schema.properties.models.properties.main);
    assert.ok(schema.properties.budget.properties.max_usd);
  });
});

function readdirOne(path: string): string {
  return readdirSync(path)[0]!;
}
