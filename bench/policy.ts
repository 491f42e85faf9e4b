/**
 * What checking a bash call costs before it runs: the command decision (`decide`, which splits the
 * line) and the path requests (`pathArguments`, which splits it again and resolves each path on
 * disk, then `decide` for each), over the ordinary corpus (test/support/ordinary-commands.ts) with
 * the default rules and a deny rule for `git push`. Nothing is asserted. Run alone with
 * `node bench/policy.ts` (`--before DIR` adds the same figures for another checkout, such as main),
 * or with the others through `node bench/run.ts`.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ORDINARY_COMMANDS } from "../test/support/ordinary-commands.ts";
import { formatRows, type Row } from "./daemon.ts";

type Policy = typeof import("../runtime/policy/policy.ts");
type PathArguments = typeof import("../runtime/tools/bash.ts").pathArguments;

const ROUNDS = 21;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

/** µs per line, as the median of ROUNDS passes over the corpus after one untimed pass; and the slowest line's median. */
function perLine(check: (line: string) => void): { mean: number; slowest: number } {
  for (const line of ORDINARY_COMMANDS) check(line);
  const passes: number[] = [];
  const lines = ORDINARY_COMMANDS.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    ORDINARY_COMMANDS.forEach((line, index) => {
      const at = performance.now();
      check(line);
      lines[index]!.push(performance.now() - at);
    });
    passes.push(performance.now() - started);
  }
  return { mean: (median(passes) / ORDINARY_COMMANDS.length) * 1000, slowest: Math.max(...lines.map(median)) * 1000 };
}

async function load(root: string): Promise<{ policy: Policy; pathArguments: PathArguments }> {
  const url = (path: string) => pathToFileURL(join(root, path)).href;
  const policy = (await import(url("runtime/policy/policy.ts"))) as Policy;
  const { pathArguments } = (await import(url("runtime/tools/bash.ts"))) as { pathArguments: PathArguments };
  return { policy, pathArguments };
}

export async function benchPolicy(before?: string): Promise<Row[]> {
  const workdir = mkdtempSync(join(tmpdir(), "nightshift-policy-bench-"));
  mkdirSync(join(workdir, "src"));
  writeFileSync(join(workdir, "notes.txt"), "");
  writeFileSync(join(workdir, ".env"), "SECRET=1\n");
  try {
    const rows: Row[] = [{ name: "lines in the corpus", value: ORDINARY_COMMANDS.length, unit: "count" }];
    const checkouts: [string, string][] = [["", resolve(import.meta.dirname, "..")], ...(before ? [["before: ", resolve(before)] as [string, string]] : [])];
    for (const [label, root] of checkouts) {
      const { policy, pathArguments } = await load(root);
      const places = { workdir, home: join(workdir, ".nightshift"), userHome: "/home/u" };
      const rules = [{ action: "deny" as const, kind: "command" as const, pattern: "git push", origin: "bench" }, ...policy.DEFAULT_RULES];
      const command = perLine((line) => policy.decide({ kind: "command", command: line }, rules, places));
      const paths = perLine((line) => {
        for (const request of pathArguments(line, workdir, places.userHome)) policy.decide(request, rules, places);
      });
      rows.push(
        { name: `${label}command decision, per line`, value: command.mean, unit: "µs" },
        { name: `${label}command decision, slowest line`, value: command.slowest, unit: "µs" },
        { name: `${label}path requests and their decisions, per line`, value: paths.mean, unit: "µs" },
        { name: `${label}path requests and their decisions, slowest line`, value: paths.slowest, unit: "µs" },
      );
    }
    return rows;
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const at = process.argv.indexOf("--before");
  console.log(`## Policy checks per bash call\n\n${formatRows(await benchPolicy(at > 0 ? process.argv[at + 1] : undefined))}\n`);
}
