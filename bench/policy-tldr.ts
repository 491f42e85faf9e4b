/**
 * The command policy against real-world commands: every example line of the tldr pages (English:
 * common, linux, osx), `{{placeholders}}` replaced by a plain word, checked as the bash tool checks
 * a call (the command and each path it names) with the default rules plus a deny rule for `git
 * push`, in a temporary workdir. Each line that is not allowed is put in one category by its reason,
 * and lines bash itself rejects (`bash -n`) or that are keystrokes (`<Enter>`) are counted apart:
 * they are not shell. Nothing is asserted.
 *
 *   node bench/policy-tldr.ts /path/to/tldr        (a clone of github.com/tldr-pages/tldr, bare or not)
 *
 * The pages are not part of this repository (nor fetched: no network here); without the path the
 * script says so and stops.
 */

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decide, DEFAULT_RULES, type Action, type Decision, type Rule } from "../runtime/policy/policy.ts";
import { pathArguments } from "../runtime/tools/bash.ts";

const CATEGORIES: Array<[string, RegExp]> = [
  ["publishes, pushes, deletes or names a secret (a rule)", /denied by rule|asks first/],
  ["writes outside the workdir (asks)", /outside the allowed folders/],
  ["stricter by design: case, coproc, alias, trap, functions", /case statements|coproc|alias|trap|unbalanced '\}'|missing '\}'/],
  ["stricter by design: code from stdin, eval, source <(…), xargs", /shell reads its script|eval runs|source reads|xargs gives/],
  ["stricter by design: a computed or glob command name", /command name .* (uses a glob|comes from a variable)/],
  ["stricter by design: ~user, ~-", /another user's home|from before this line/],
];

function examples(root: string): string[] {
  const git = (...args: string[]) => execFileSync("git", ["-C", root, ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
  const pages = git("ls-tree", "-r", "--name-only", "HEAD").split("\n").filter((file) => /^pages\/(common|linux|osx)\/.*\.md$/.test(file));
  const lines: string[] = [];
  for (const page of pages) {
    for (const match of git("show", `HEAD:${page}`).matchAll(/^`(.+)`$/gm)) {
      // Keystrokes in an interactive program (`<Ctrl c>`), not a command line.
      if (/^<[^>]+>/.test(match[1]!)) continue;
      lines.push(match[1]!.replace(/\{\{(.*?)\}\}/g, (_, inner: string) => inner.replace(/[^A-Za-z0-9._/-]+/g, "_") || "x"));
    }
  }
  return lines;
}

const ORDER: Action[] = ["deny", "ask", "allow"];

export function checkTldr(root: string): { lines: number; counts: Map<string, number>; unexplained: string[] } {
  const workdir = mkdtempSync(join(tmpdir(), "nightshift-tldr-"));
  mkdirSync(join(workdir, "src"));
  const places = { workdir, home: join(workdir, ".nightshift"), userHome: "/home/u" };
  const rules: Rule[] = [{ action: "deny", kind: "command", pattern: "git push", origin: "bench" }, ...DEFAULT_RULES];
  const counts = new Map<string, number>();
  const unexplained: string[] = [];
  const count = (what: string) => counts.set(what, (counts.get(what) ?? 0) + 1);
  const lines = examples(root);
  try {
    for (const command of lines) {
      const requests = [{ kind: "command" as const, command }, ...pathArguments(command, workdir, places.userHome)];
      const decision: Decision = requests.map((request) => decide(request, rules, places)).sort((a, b) => ORDER.indexOf(a.action) - ORDER.indexOf(b.action))[0]!;
      if (decision.action === "allow") continue;
      if (/<(Enter|Esc|Ctrl)/.test(command) || spawnSync("bash", ["-n", "-c", command]).status !== 0) {
        count("not shell (bash -n rejects it, or keystrokes)");
        continue;
      }
      const category = CATEGORIES.find(([, pattern]) => pattern.test(decision.reason));
      if (category) count(category[0]);
      else unexplained.push(`${decision.action}: ${command} (${decision.reason})`);
    }
  } finally {
    rmSync(workdir, { recursive: true, force: true });
  }
  return { lines: lines.length, counts, unexplained };
}

if (import.meta.main) {
  const root = process.argv[2];
  // A clone, or a bare mirror: the pages are read from its HEAD commit.
  if (!root || !existsSync(root) || spawnSync("git", ["-C", root, "cat-file", "-e", "HEAD:pages/common"]).status !== 0) {
    console.error("usage: node bench/policy-tldr.ts /path/to/tldr (a checkout of github.com/tldr-pages/tldr; not fetched here)");
    process.exit(2);
  }
  const { lines, counts, unexplained } = checkTldr(root);
  const share = (n: number) => `${((100 * n) / lines).toFixed(2)}%`;
  console.log(`| tldr example lines (common, linux, osx) | ${lines} | |\n|---|---:|---:|`);
  for (const [what, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`| ${what} | ${n} | ${share(n)} |`);
  console.log(`| not explained by any of these (false alarms) | ${unexplained.length} | ${share(unexplained.length)} |`);
  for (const line of unexplained) console.log(`- ${line}`);
}
