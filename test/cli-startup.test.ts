import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { CLI } from "./support/cli.ts";

/**
 * What each way of starting Nightshift loads. Start-up time is measured in bench/cli.ts; these tests
 * pin its cause: a command loads only the modules it uses, so `status` does not pay for the SDK,
 * grammy, zod or pino, and `npx nightshift` runs the emitted JavaScript rather than the sources.
 */

const ROOT = join(import.meta.dirname, "..");
const scratch = mkdtempSync(join(tmpdir(), "nightshift-startup-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Registered with --import: records every module URL the process loads and writes them at exit. */
const RECORDER = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from "node:module";
import { writeFileSync } from "node:fs";
const loaded = [];
registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
process.on("exit", () => writeFileSync(process.env.LOADED_MODULES_FILE, JSON.stringify(loaded)));
`)}`;

interface Loaded {
  code: number | null;
  output: string;
  /** npm packages loaded, by name. */
  packages: string[];
  /** Files of this repository that were loaded, relative to it. */
  files: string[];
}

let runs = 0;
function runRecorded(entry: string, args: string[], options: { home: string; until?: string; env?: NodeJS.ProcessEnv }): Promise<Loaded> {
  const file = join(scratch, `loaded-${++runs}.json`);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: options.home, NIGHTSHIFT_HOME: options.home, LOADED_MODULES_FILE: file, ...options.env };
  const child = spawn(process.execPath, ["--import", RECORDER, entry, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let stopped = false;
  const collect = (chunk: Buffer) => {
    output += chunk.toString("utf8");
    if (stopped || !options.until || !output.includes(options.until)) return;
    stopped = true;
    child.kill("SIGTERM"); // once: a clean stop, so the exit hook runs (a second SIGTERM kills at once)
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      if (!existsSync(file)) return reject(new Error(`no module list was written; output:\n${output}`));
      const urls = JSON.parse(readFileSync(file, "utf8")) as string[];
      const packages = new Set<string>();
      const files = new Set<string>();
      for (const url of urls) {
        if (!url.startsWith("file:")) continue;
        const path = new URL(url).pathname;
        const inPackage = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
        if (inPackage) packages.add(inPackage[1]!);
        else if (path.startsWith(`${ROOT}/`)) files.add(path.slice(ROOT.length + 1));
      }
      resolve({ code, output, packages: [...packages].sort(), files: [...files].sort() });
    });
  });
}

const HEAVY = ["@anthropic-ai/sdk", "grammy", "zod", "yaml", "pino", "lowdb", "node-cron"];

describe("what a command loads", () => {
  const home = mkdtempSync(join(scratch, "home-"));

  for (const args of [["--help"], ["--version"], ["status"], ["approve"], ["deny", "nope"], ["cancel", "nope"]]) {
    test(`nightshift ${args.join(" ")} loads no npm package`, async () => {
      const run = await runRecorded(CLI, args, { home });
      assert.deepEqual(run.packages, [], `loaded ${run.packages.join(", ")}; output: ${run.output}`);
      assert.ok(!run.output.includes("unexpected error"), run.output);
    });
  }

  test("nightshift pair --list with no allowed_users in config.yaml loads no npm package", async () => {
    const run = await runRecorded(CLI, ["pair", "--list"], { home });
    assert.match(run.output, /No paired Telegram users/);
    assert.deepEqual(run.packages, []);
  });

  test("nightshift pair --list reads telegram.allowed_users alone: YAML, not the whole schema", async () => {
    const listHome = mkdtempSync(join(scratch, "pair-"));
    writeFileSync(join(listHome, "config.yaml"), "telegram:\n  allowed_users: [4242]\n");
    const run = await runRecorded(CLI, ["pair", "--list"], { home: listHome });
    assert.match(run.output, /4242/);
    assert.deepEqual(run.packages, ["yaml"]);
  });

  test("nightshift pair --list still names a bad allowed_users with its line, through the whole config", async () => {
    const listHome = mkdtempSync(join(scratch, "pair-"));
    writeFileSync(join(listHome, "config.yaml"), "telegram:\n  allowed_users: [\"@alice\"]\n");
    const run = await runRecorded(CLI, ["pair", "--list"], { home: listHome });
    assert.equal(run.code, 2, run.output);
    assert.match(run.output, /config\.yaml:2.*allowed_users.*numeric Telegram user id/);
  });

  test("the daemon starts without grammy when Telegram is off, and without the SDK until a task needs a model", async () => {
    const daemonHome = mkdtempSync(join(scratch, "daemon-"));
    const run = await runRecorded(CLI, ["start"], { home: daemonHome, until: "Nightshift is running", env: { ANTHROPIC_API_KEY: "sk-ant-test-0123456789abcdef" } });
    assert.match(run.output, /Nightshift is running/);
    assert.ok(!run.packages.includes("grammy"), "grammy was loaded with Telegram off");
    assert.ok(!run.packages.includes("@anthropic-ai/sdk"), "the SDK was loaded with nothing to run");
  });

  test("a usage error is reported before anything heavy is loaded", async () => {
    const run = await runRecorded(CLI, ["run", "--help-is-not-an-option"], { home });
    assert.equal(run.code, 2, run.output); // an unknown option is a usage error, found before loading anything
    assert.deepEqual(run.packages.filter((name) => HEAVY.includes(name)), []);
  });
});

describe("npx nightshift", () => {
  const bin = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { bin: { nightshift: string } }).bin.nightshift;
  const built = existsSync(join(ROOT, "dist", "cli", "nightshift.js"));
  const skip = built || process.env.CI === "true" ? {} : { skip: "dist/ is not built here: `npm install` (its prepare script) or `npm run build` builds it" };

  test("package.json's bin is JavaScript, not the TypeScript sources", () => {
    assert.match(bin, /\.js$/);
  });

  test("the bin runs the emitted JavaScript in dist/ and none of the sources", skip, async () => {
    const home = mkdtempSync(join(scratch, "bin-"));
    const run = await runRecorded(join(ROOT, bin), ["status"], { home });
    assert.equal(run.code, 0, run.output);
    assert.ok(run.files.includes("dist/cli/nightshift.js"), `loaded: ${run.files.join(", ")}`);
    assert.deepEqual(run.files.filter((file) => file.endsWith(".ts")), []);
  });

  test("the bin says so when the sources changed after the build, and runs the build it has", () => {
    const checkout = mkdtempSync(join(scratch, "checkout-"));
    for (const dir of ["bin", "dist/cli", "cli"]) mkdirSync(join(checkout, dir), { recursive: true });
    copyFileSync(join(ROOT, bin), join(checkout, "bin", "nightshift.js"));
    writeFileSync(join(checkout, "dist", "cli", "nightshift.js"), 'process.stdout.write("the build ran\\n");\n');
    writeFileSync(join(checkout, "cli", "nightshift.ts"), "// a source\n");
    const run = () => spawnSync(process.execPath, [join(checkout, "bin", "nightshift.js")], { encoding: "utf8" });
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(checkout, "cli", "nightshift.ts"), past, past);
    const fresh = run();
    assert.equal(fresh.stdout, "the build ran\n");
    assert.equal(fresh.stderr, "");
    const future = new Date(Date.now() + 60_000);
    utimesSync(join(checkout, "cli", "nightshift.ts"), future, future); // edited (or pulled) after the build
    const stale = run();
    assert.equal(stale.stdout, "the build ran\n");
    assert.match(stale.stderr, /the sources in .* changed after dist\/ was built; this runs the older build\. Run `npm run build` there/);
  });
});
