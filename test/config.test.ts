import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadConfig, machineName, parseConfigText, requireApiKey, sandboxBackend, storeUrl } from "../runtime/config.ts";
import { ConfigError } from "../runtime/errors.ts";
import { tempDir } from "./support/home.ts";

function configError(text: string): ConfigError {
  try {
    parseConfigText(text, "/home/me/.nightshift/config.yaml");
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error;
  }
  assert.fail("expected a ConfigError");
}

describe("config.yaml", () => {
  it("refuses a Telegram watchdog shorter than a poll, a bad cron for memory jobs, and a username as an allowed user", () => {
    assert.match(configError("telegram:\n  poll_timeout: 60s\n  watchdog: 30s\n").message, /config\.yaml:3: setting `telegram\.watchdog`: must be longer than poll_timeout/);
    assert.match(configError("memory:\n  digest: every morning\n").message, /setting `memory\.digest`: must be a cron expression with 5 fields/);
    assert.match(configError('memory:\n  consolidate: "0 3 30 2 *"\n').message, /setting `memory\.consolidate`: "0 3 30 2 \*" never runs \(February has no 30th\); fix the day/);
    assert.match(configError("telegram:\n  allowed_users: [\"@alice\"]\n").message, /telegram\.allowed_users\.0`: must be a numeric Telegram user id/);
  });

  it("gives every setting a default when the file is empty", () => {
    const config = parseConfigText("", "config.yaml");
    assert.equal(config.models.main.model, "claude-sonnet-5-5");
    assert.equal(config.budget.timeout, 3_600_000);
    assert.equal(config.sandbox.mode, "auto");
  });

  it("sandbox.mode auto means bubblewrap on Linux and sandbox-runtime on macOS; an explicit mode is kept", () => {
    assert.equal(sandboxBackend("auto", "linux"), "bwrap");
    assert.equal(sandboxBackend("auto", "darwin"), "srt");
    for (const mode of ["bwrap", "srt", "off"] as const) {
      assert.equal(sandboxBackend(mode, "linux"), mode);
      assert.equal(sandboxBackend(mode, "darwin"), mode);
    }
  });

  it("names the line of a misspelt key before complaining about the key it hides", () => {
    const error = configError("models:\n  main:\n    modle: claude-opus-5-5\n");
    assert.equal(error.setting, "models.main.modle");
    assert.match(error.message, /^\/home\/me\/\.nightshift\/config\.yaml:3: setting `models\.main\.modle`: unknown key modle; remove it or check its spelling/);
  });

  it("explains a bad duration and a bad choice", () => {
    assert.match(configError("budget:\n  timeout: soon\n").message, /config\.yaml:2: setting `budget\.timeout`: "soon" is not a duration; write it like 90s, 30m, 2h or 1h30m/);
    assert.match(configError("sandbox:\n  mode: maybe\n").message, /config\.yaml:2: setting `sandbox\.mode`: .*"auto"\|"bwrap"\|"srt"\|"off"/);
  });

  it("reports broken YAML with its line", () => {
    assert.match(configError("budget:\n  max_usd: [1\n").message, /config\.yaml:\d+: invalid YAML: .*Fix the syntax/);
  });

  it("names a permission rule whose pattern cannot work", () => {
    const error = configError("permissions:\n  deny:\n    - read: secrets/**\n");
    assert.equal(error.setting, "permissions.deny.0.read");
    assert.match(error.message, /config\.yaml:3: setting `permissions\.deny\.0\.read`: .*is relative; start it with \/, ~, \*\* or \{workdir\}/);
    assert.match(configError("permissions:\n  allow:\n    - network: https://example.com/x\n").message, /permissions\.allow\.0\.network/);
    assert.match(configError("permissions:\n  ask:\n    - { command: git push, network: x.com }\n").message, /exactly one of read, write, command, network or tool/);
  });

  it("takes a shared store's URL without a password, names the place for one with it, and names the machine", () => {
    const config = parseConfigText("store: postgres://nightshift@db.example.com/nightshift\nmachine: home-server\n", "config.yaml");
    assert.equal(storeUrl({ config, env: {} }), "postgres://nightshift@db.example.com/nightshift");
    assert.equal(storeUrl({ config, env: { NIGHTSHIFT_DATABASE_URL: "postgres://other@db/x" } }), "postgres://other@db/x", "the variable wins");
    assert.equal(machineName(config), "home-server");
    assert.equal(machineName(parseConfigText("", "config.yaml"), "Alice's MacBook.local"), "Alice-s-MacBook.local");
    assert.equal(storeUrl({ config: parseConfigText("", "config.yaml"), env: {} }), undefined);
    const secret = configError("store: postgres://nightshift:hunter2@db.example.com/nightshift\n").message;
    assert.match(secret, /setting `store`: holds a password, which tasks could read in config\.yaml: put the whole URL in NIGHTSHIFT_HOME\/\.env as NIGHTSHIFT_DATABASE_URL/);
    assert.doesNotMatch(secret, /hunter2/, "the password is not repeated");
    assert.match(configError("store: mysql://db/x\n").message, /setting `store`: must be a PostgreSQL URL/);
    assert.match(configError("machine: my laptop\n").message, /setting `machine`: must be a short name/);
  });

  it("parses durations written several ways", () => {
    const config = parseConfigText("budget:\n  timeout: 1h30m\nsandbox:\n  command_timeout: 90\n", "config.yaml");
    assert.equal(config.budget.timeout, 5_400_000);
    assert.equal(config.sandbox.command_timeout, 90_000);
  });
});

describe("model roles", () => {
  it("take ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY unless a role names its own, reading .env too", () => {
    const dir = tempDir();
    try {
      const home = join(dir.path, "home");
      mkdirSync(home);
      writeFileSync(join(home, "config.yaml"), "models:\n  small:\n    model: llama3\n    base_url: http://localhost:11434\n    api_key_env: LOCAL_KEY\n");
      writeFileSync(join(home, ".env"), "ANTHROPIC_API_KEY=from-dotenv\nANTHROPIC_BASE_URL=https://proxy.example.com\n");
      const loaded = loadConfig({ NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: "https://from-shell.example.com" });
      assert.equal(loaded.roles.main.baseURL, "https://from-shell.example.com", "the shell wins over .env");
      assert.equal(loaded.roles.main.apiKey, "from-dotenv");
      assert.equal(loaded.roles.small.baseURL, "http://localhost:11434");
      assert.equal(loaded.roles.small.apiKey, undefined);
      assert.equal(requireApiKey(loaded.roles.small), "local", "a local endpoint needs no key");
    } finally {
      dir.cleanup();
    }
  });

  it("say which variable to set when a key is missing", () => {
    const loaded = loadConfig({ NIGHTSHIFT_HOME: "/nonexistent/nightshift" });
    assert.throws(() => requireApiKey(loaded.roles.main), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.setting, "ANTHROPIC_API_KEY");
      assert.match(error.message, /ANTHROPIC_API_KEY is not set/);
      return true;
    });
  });
});
