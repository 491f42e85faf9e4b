/**
 * Staging a task's folder (issue 15): how long each way of making a working copy takes and how much
 * disk it uses, on this machine's filesystem, for a folder of 10 MB, one of about 300 MB holding a
 * real node_modules, and one of 2 GB. The ways:
 * - `cp -a` (with `--reflink=auto`: a clone on btrfs/XFS, a plain copy on ext4);
 * - `cp -al`, hard links: fast, but a write in place (`>>`, an editor that does not rename) changes
 *   the original too, so it is measured only to show why it is not an option;
 * - `git worktree add` (the tracked files only; ignored folders would be mounted read-only);
 * - overlayfs in a user namespace (Linux ≥ 5.11): a mount over the original, writes go to an upper
 *   folder; timed from the holder's start to the mount being ready.
 * Disk is the filesystem's used blocks before and after (statfs), then after the copy has 10 files
 * of 10 KB changed. Run as the user who would run Nightshift: `node bench/staging.ts`. Takes about
 * a minute (the 2 GB folder is written first).
 */

import { execFileSync, spawn, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

const ROOT = join(import.meta.dirname, "..");

interface Row {
  folder: string;
  way: string;
  ms: number;
  diskMb: number;
  afterEditsMb: number;
  note: string;
}

const usedBytes = (path: string) => {
  const stats = statfsSync(path);
  return (stats.blocks - stats.bfree) * stats.bsize;
};
const mb = (bytes: number) => Math.max(0, bytes / 1024 / 1024);

function makeFolders(base: string): Record<string, string> {
  const small = join(base, "small");
  mkdirSync(join(small, "src"), { recursive: true });
  for (let i = 0; i < 1000; i++) writeFileSync(join(small, "src", `file${i}.ts`), `// file ${i}\n${"x".repeat(10_200)}\n`);
  const node = join(base, "node");
  cpSync(join(small, "src"), join(node, "src"), { recursive: true });
  cpSync(join(ROOT, "node_modules"), join(node, "node_modules"), { recursive: true, verbatimSymlinks: true });
  const big = join(base, "big");
  mkdirSync(join(big, "data"), { recursive: true });
  cpSync(join(small, "src"), join(big, "src"), { recursive: true });
  cpSync(join(node, "node_modules"), join(big, "node_modules"), { recursive: true, verbatimSymlinks: true });
  const chunk = Buffer.alloc(64 * 1024 * 1024, 7);
  const total = 2 * 1024 * 1024 * 1024 - 350 * 1024 * 1024;
  for (let written = 0, i = 0; written < total; written += chunk.length, i++) writeFileSync(join(big, "data", `blob${i}.bin`), chunk);
  for (const folder of [small, node, big]) {
    execFileSync("git", ["init", "-q"], { cwd: folder });
    writeFileSync(join(folder, ".gitignore"), "node_modules/\ndata/\n");
    execFileSync("git", ["add", "-A"], { cwd: folder });
    execFileSync("git", ["-c", "user.email=b@example.com", "-c", "user.name=bench", "commit", "-qm", "start"], { cwd: folder });
  }
  spawnSync("sync");
  return { "10 MB (1,000 files)": small, "≈ 350 MB (node_modules)": node, "2 GB (node_modules, data)": big };
}

function editTen(dir: string): void {
  for (let i = 0; i < 10; i++) writeFileSync(join(dir, "src", `file${i}.ts`), `// changed ${i}\n${"y".repeat(10_200)}\n`);
}

/** Times `make`, then the disk it took, then the disk after ten edits through `view`. */
async function measure(base: string, folder: string, way: string, make: () => Made | Promise<Made>, note = ""): Promise<Row> {
  spawnSync("sync");
  const before = usedBytes(base);
  const started = performance.now();
  const made = await make();
  const ms = performance.now() - started;
  spawnSync("sync");
  const disk = usedBytes(base) - before;
  editTen(made.view);
  spawnSync("sync");
  const after = usedBytes(base) - before;
  made.done();
  return { folder, way, ms, diskMb: mb(disk), afterEditsMb: mb(after), note };
}

/** An overlay over `lower`, mounted by a holder process in its own user and mount namespace; its view through /proc. */
interface Made {
  view: string;
  done(): void;
}

async function overlay(base: string, lower: string): Promise<Made> {
  const dir = mkdtempSync(join(base, "stage-"));
  for (const sub of ["upper", "work", "merged"]) mkdirSync(join(dir, sub));
  const script = `mount -t overlay overlay -o lowerdir=${lower},upperdir=${dir}/upper,workdir=${dir}/work,userxattr ${dir}/merged && echo ready && exec sleep 600`;
  const holder = spawn("unshare", ["-Urm", "--propagation", "private", "sh", "-c", script], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    holder.stdout.once("data", () => resolve());
    holder.once("exit", (code) => reject(new Error(`the overlay holder exited (${code})`)));
  });
  return {
    view: `/proc/${holder.pid}/root${dir}/merged`,
    done() {
      holder.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function benchStaging(): Promise<Row[]> {
  const base = mkdtempSync(join("/var/tmp", "nightshift-bench-stage-"));
  const rows: Row[] = [];
  try {
    const folders = makeFolders(base);
    for (const [name, folder] of Object.entries(folders)) {
      const copy = (flags: string[]) => () => {
        const dest = mkdtempSync(join(base, "copy-"));
        rmSync(dest, { recursive: true });
        execFileSync("cp", [...flags, folder, dest]);
        return { view: dest, done: () => rmSync(dest, { recursive: true, force: true }) };
      };
      rows.push(await measure(base, name, "cp -a --reflink=auto", copy(["-a", "--reflink=auto"])));
      rows.push(await measure(base, name, "cp -al (hard links)", copy(["-al"]), "unsafe: writes in place reach the original"));
      rows.push(
        await measure(base, name, "git worktree add", () => {
          const dest = join(base, `worktree-${rows.length}`);
          execFileSync("git", ["worktree", "add", "-q", "--detach", dest], { cwd: folder });
          return { view: dest, done: () => execFileSync("git", ["worktree", "remove", "--force", dest], { cwd: folder }) };
        }, "tracked files only: ignored folders missing"),
      );
      rows.push(await measure(base, name, "overlayfs in a user namespace", () => overlay(base, folder)));
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  return rows;
}

/**
 * Approvals a person answers in a scripted 20-step coding task (12 file writes and edits, 5
 * commands, 2 reads, 1 `git push`), run through the whole runtime against the Messages API
 * stand-in, approving everything: without staging, where reviewing before a change reaches the
 * folder means writes there ask (`ask: write: "{workdir}/**"`); with staging, where the one review
 * is the apply at the end. Both ask before the push.
 */
export async function benchApprovals(): Promise<{ way: string; approvals: number; reviews: number }[]> {
  const { createRuntimeHarness, scriptedApprover } = await import("../test/support/runtime-harness.ts");
  const use = (name: string, input: unknown) => ({ content: [{ type: "tool_use" as const, name, input }] });
  const steps = [
    ...Array.from({ length: 8 }, (_, i) => use("write_file", { path: `src/module${i}.js`, content: `export const v${i} = ${i};\n` })),
    ...Array.from({ length: 4 }, (_, i) => use("edit_file", { path: `src/module${i}.js`, old_text: `= ${i};`, new_text: `= ${i + 1};` })),
    ...Array.from({ length: 5 }, () => use("bash", { command: "ls src | wc -l" })),
    use("read_file", { path: "src/module0.js" }),
    use("read_file", { path: "src/module1.js" }),
    use("bash", { command: "git push origin main || true" }),
  ];
  const rows = [];
  for (const staged of [false, true]) {
    const answers = Array.from({ length: 40 }, () => ({ decision: "once" as const }));
    let store: (() => import("../runtime/approvals.ts").ApprovalStore) | undefined;
    const approver = scriptedApprover(answers, () => store!());
    const h = await createRuntimeHarness({ approvers: [approver], config: staged ? "" : 'permissions:\n  ask:\n    - write: "{workdir}/**"\n' });
    store = () => h.runtime.approvals;
    try {
      h.api.script(...steps, { content: [{ type: "text", text: "done" }] });
      await h.runtime.start(h.runtime.newSessionId(), h.task({ budget: { max_turns: 40, max_usd: 5, timeout_ms: 3_600_000 }, ...(staged ? { stage: true } : {}) }));
      rows.push({ way: staged ? "staged: writes go to the copy" : "not staged: writes in the folder ask", approvals: approver.seen.length, reviews: staged ? 1 : 0 });
    } finally {
      await h.close();
    }
  }
  return rows;
}

if (import.meta.main && process.argv.includes("--approvals")) {
  console.log("| way | approvals asked | reviews at the end |");
  console.log("|---|---:|---:|");
  for (const row of await benchApprovals()) console.log(`| ${row.way} | ${row.approvals} | ${row.reviews} |`);
} else if (import.meta.main) {
  const rows = await benchStaging();
  console.log("| folder | way | staging, ms | disk, MB | after 10 edits, MB | note |");
  console.log("|---|---|---:|---:|---:|---|");
  for (const row of rows) console.log(`| ${row.folder} | ${row.way} | ${row.ms.toFixed(0)} | ${row.diskMb.toFixed(1)} | ${row.afterEditsMb.toFixed(1)} | ${row.note} |`);
}
