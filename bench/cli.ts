/**
 * What a CLI command costs as a whole process: wall time from spawn to exit and peak RSS, for the
 * commands a person types many times a day, with no daemon running. Each command is run `runs`
 * times, interleaved with `node -e 0` so machine load hits both alike; the table shows medians and
 * each command's difference from `node -e 0`. Two entry points: the emitted JavaScript
 * (`dist/cli/nightshift.js`, what `npm start` and the service run) and the file package.json's `bin`
 * names (what `npx nightshift` runs, after npx's own start-up, which is not counted here).
 * Peak RSS comes from GNU time (`/usr/bin/time -f %M`) where it is installed.
 * Run alone with `node bench/cli.ts`, or with the other benches through `node bench/run.ts`.
 */

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Row } from "./daemon.ts";

const ROOT = join(import.meta.dirname, "..");
const GNU_TIME = "/usr/bin/time";

/** The commands the issue names; each runs against an empty home with no daemon. */
const COMMANDS: { name: string; args: string[] }[] = [
  { name: "--version", args: ["--version"] },
  { name: "--help", args: ["--help"] },
  { name: "status", args: ["status"] },
  { name: "approve (list)", args: ["approve"] },
  { name: "deny ID", args: ["deny", "nope"] },
  { name: "cancel ID", args: ["cancel", "nope"] },
  { name: "pair --list", args: ["pair", "--list"] },
];

interface Sample {
  ms: number;
  kb?: number;
}

function once(argv: string[], env: NodeJS.ProcessEnv): Sample {
  const timed = existsSync(GNU_TIME);
  const started = performance.now();
  const result = timed ? spawnSync(GNU_TIME, ["-f", "%M", ...argv], { env, encoding: "utf8" }) : spawnSync(argv[0]!, argv.slice(1), { env, encoding: "utf8" });
  const ms = performance.now() - started;
  if (result.error) throw result.error;
  const kb = timed ? Number(result.stderr.trim().split("\n").at(-1)) : undefined;
  return { ms, ...(kb !== undefined && Number.isFinite(kb) ? { kb } : {}) };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

/**
 * `root` is the checkout to measure; `before`, another checkout (an older commit with its dist/
 * built), is measured in the same interleaved runs so the two can be compared under the same load.
 */
export async function benchCli(runs = 15, root = ROOT, before?: string): Promise<Row[]> {
  const home = mkdtempSync(join(tmpdir(), "nightshift-bench-cli-"));
  const env: NodeJS.ProcessEnv = { ...process.env, NIGHTSHIFT_HOME: home, ANTHROPIC_API_KEY: "sk-ant-bench-0123456789abcdef" };
  delete env.TELEGRAM_BOT_TOKEN;
  const entries = [...entryFiles(root, ""), ...(before ? entryFiles(before, "before: ") : [])];
  try {
    spawnSync(process.execPath, [entries[0]!.file, "init"], { env }); // a home as `nightshift init` leaves it
    const bare: Sample[] = [];
    const samples = new Map<string, Sample[]>();
    for (let run = 0; run < runs; run++) {
      bare.push(once([process.execPath, "-e", "0"], env));
      for (const entry of entries)
        for (const command of COMMANDS) {
          const key = `${entry.label} ${command.name}`;
          samples.set(key, [...(samples.get(key) ?? []), once([process.execPath, entry.file, ...command.args], env)]);
        }
    }
    const base = median(bare.map((sample) => sample.ms));
    const rows: Row[] = [{ name: `node -e 0, median of ${runs}`, value: base, unit: "ms" }];
    const baseKb = bare[0]?.kb !== undefined ? median(bare.map((sample) => sample.kb!)) : undefined;
    if (baseKb !== undefined) rows.push({ name: "node -e 0, peak RSS", value: baseKb * 1024, unit: "bytes" });
    for (const [key, list] of samples) {
      const ms = median(list.map((sample) => sample.ms));
      rows.push({ name: `${key}: wall, median`, value: ms, unit: "ms" });
      rows.push({ name: `${key}: over node -e 0`, value: ms - base, unit: "ms", ...(!key.startsWith("before") ? { target: 60 } : {}) });
      if (list[0]?.kb !== undefined) rows.push({ name: `${key}: peak RSS`, value: median(list.map((sample) => sample.kb!)) * 1024, unit: "bytes" });
    }
    return rows;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/**
 * Idle RSS of `nightshift start` through each entry point a person uses: dist/ (`npm start`, the
 * service) and package.json's bin (`npx nightshift start`), and `before`'s where given. VmRSS from
 * /proc after the ready line and `idleMs` of nothing to do (Linux only).
 */
export async function benchEntryIdle(root = ROOT, before?: string, idleMs = 5_000): Promise<Row[]> {
  const rows: Row[] = [];
  const entries = [...entryFiles(root, ""), ...(before ? entryFiles(before, "before: ") : [])];
  for (const entry of entries) {
    const home = mkdtempSync(join(tmpdir(), "nightshift-bench-idle-"));
    const env: NodeJS.ProcessEnv = { ...process.env, NIGHTSHIFT_HOME: home, ANTHROPIC_API_KEY: "sk-ant-bench-0123456789abcdef" };
    delete env.TELEGRAM_BOT_TOKEN;
    const child = spawn(process.execPath, [entry.file, "start"], { env, stdio: ["ignore", "ignore", "pipe"] });
    try {
      await new Promise<void>((resolve, reject) => {
        let output = "";
        child.stderr.on("data", (chunk) => {
          output += chunk;
          if (output.includes("Nightshift is running")) resolve();
        });
        child.once("close", () => reject(new Error(`${entry.file} start exited: ${output}`)));
      });
      await new Promise((resolve) => setTimeout(resolve, idleMs));
      const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1]);
      rows.push({ name: `${entry.label} start: RSS after ${idleMs / 1000} s idle`, value: kb * 1024, unit: "bytes", ...(entry.label.startsWith("before") ? {} : { target: 120 * 1024 * 1024 }) });
    } finally {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("close", resolve));
      rmSync(home, { recursive: true, force: true });
    }
  }
  return rows;
}

function entryFiles(dir: string, prefix: string) {
  const dist = join(dir, "dist", "cli", "nightshift.js");
  const bin = join(dir, (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { bin: { nightshift: string } }).bin.nightshift);
  return [
    { label: `${prefix}dist`, file: dist },
    { label: `${prefix}bin`, file: bin },
  ].filter((entry) => existsSync(entry.file));
}

if (import.meta.main) {
  const { formatRows } = await import("./daemon.ts");
  const before = process.argv.indexOf("--before");
  const other = before > 0 ? process.argv[before + 1] : undefined;
  console.log(`## CLI commands, whole process\n\n${formatRows(await benchCli(15, ROOT, other))}\n`);
  console.log(`## The daemon idle, by entry point\n\n${formatRows(await benchEntryIdle(ROOT, other))}\n`);
}
