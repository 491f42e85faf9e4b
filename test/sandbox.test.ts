import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { SandboxUnavailable } from "../runtime/errors.ts";
import { createBwrapSandbox, createSrtSandbox, createUnsandboxed, scrubEnv } from "../runtime/sandbox/index.ts";
import type { BwrapSandboxOptions, RunOptions, Sandbox } from "../runtime/sandbox/index.ts";
import type { ToolContext } from "../runtime/tools/tool.ts";
import { LINUX_BACKENDS, needs, type LinuxBackend } from "./support/prerequisites.ts";

const tempDirs: string[] = [];
function tempDir(prefix = "nightshift-sandbox-"): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  tempDirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

const baseEnv = { PATH: process.env.PATH, LANG: "C.UTF-8", HOME: homedir() };
function limits(cwd: string, extra: Partial<RunOptions> = {}): RunOptions {
  return { cwd, timeoutMs: 10_000, maxOutputBytes: 64 * 1024, ...extra };
}

/** Processes whose command line mentions `needle` (zombies have an empty cmdline and do not count). */
function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      if (cmdline.includes(needle)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/** The Linux sandboxes these suites run against, and what each needs here. */
const SANDBOXES: Record<LinuxBackend, { create(options: BwrapSandboxOptions): Sandbox; needs: { skip?: string } }> = {
  bwrap: { create: createBwrapSandbox, needs: needs("bwrap", "socat") },
  srt: { create: createSrtSandbox, needs: needs("srt") },
};

for (const backend of LINUX_BACKENDS) {
  const { create: createSandbox } = SANDBOXES[backend];
  describe(`${backend} sandbox`, SANDBOXES[backend].needs, () => {
    const sandbox = createSandbox({ env: baseEnv });
    let cwd: string;
    before(async () => {
      cwd = tempDir();
      const probe = await sandbox.probe();
      assert.equal(probe.ok, true, `${backend} must work on this machine: ${probe.problem}`);
      assert.equal(probe.kind, backend);
    });
    after(() => sandbox.close?.());

    test("runs a command and returns its interleaved output and exit code", async () => {
      const result = await sandbox.run("echo out; echo err >&2; pwd; exit 3", limits(cwd));
      assert.equal(result.exitCode, 3);
      assert.equal(result.output, `out\nerr\n${cwd}\n`);
      assert.equal(result.droppedBytes, 0);
      assert.equal(result.timedOut, false);
      assert.equal(result.aborted, false);
    });

    test("returns a failing command's exit code without throwing", async () => {
      const result = await sandbox.run("no-such-command-xyz", limits(cwd));
      assert.equal(result.exitCode, 127);
      assert.match(result.output, /command not found/);
    });

    test("a write inside cwd succeeds and is visible outside", async () => {
      const result = await sandbox.run("mkdir -p sub && echo hello > sub/file.txt", limits(cwd));
      assert.equal(result.exitCode, 0, result.output);
      assert.equal(readFileSync(join(cwd, "sub/file.txt"), "utf8"), "hello\n");
    });

    test("extra writable paths accept writes too", async () => {
      const extra = tempDir();
      const result = await sandbox.run(`echo shared > ${extra}/out.txt`, limits(cwd, { writable: [extra] }));
      assert.equal(result.exitCode, 0, result.output);
      assert.equal(readFileSync(join(extra, "out.txt"), "utf8"), "shared\n");
    });

    test("a write into another temp dir fails and leaves nothing there", async () => {
      const other = tempDir();
      const result = await sandbox.run(`echo leak > ${other}/leak.txt`, limits(cwd));
      assert.notEqual(result.exitCode, 0);
      assert.equal(existsSync(join(other, "leak.txt")), false);
    });

    test("a write into $HOME fails", async () => {
      const name = `nightshift-sandbox-probe-${process.pid}`;
      const target = join(homedir(), name);
      try {
        const result = await sandbox.run(`echo leak > "$HOME/${name}"`, limits(cwd));
        assert.notEqual(result.exitCode, 0);
        assert.equal(existsSync(target), false);
      } finally {
        rmSync(target, { force: true });
      }
    });

    test("the system outside cwd is read-only even for root", async () => {
      const result = await sandbox.run("touch /etc/nightshift-probe || mount -o remount,rw / || echo denied", limits(cwd));
      assert.match(result.output, /Read-only file system/);
      assert.match(result.output, /denied$/m);
      assert.equal(existsSync("/etc/nightshift-probe"), false);
    });

    test("hidden paths are empty inside the sandbox, and missing ones are skipped", async () => {
      const home = tempDir("nightshift-home-");
      mkdirSync(join(home, ".ssh"));
      writeFileSync(join(home, ".ssh/id_rsa"), "FAKE PRIVATE KEY\n");
      writeFileSync(join(home, ".env"), "API=1\n");
      const read = `cat ${home}/.ssh/id_rsa; cat ${home}/.env; echo "ssh holds: $(ls -A ${home}/.ssh)"`;
      const open = await createSandbox({ env: baseEnv }).run(read, limits(home));
      assert.match(open.output, /FAKE PRIVATE KEY/, "control: without hiding the files are readable");

      const hiding = createSandbox({
        env: baseEnv,
        readOnlyHidden: [join(home, ".ssh"), join(home, ".env"), join(home, ".aws")],
      });
      const hidden = await hiding.run(read, limits(home));
      assert.doesNotMatch(hidden.output, /FAKE PRIVATE KEY|API=1/);
      assert.match(hidden.output, /id_rsa: No such file or directory/);
      assert.match(hidden.output, /\.env: Permission denied/);
      assert.match(hidden.output, /^ssh holds: $/m);
      const write = await hiding.run(`echo x > ${home}/.ssh/authorized_keys`, limits(home));
      // srt on Linux hides a folder inside the workdir under a writable tmpfs: the write seems to
      // succeed and vanishes with the run. Either way nothing reaches the real folder.
      if (backend === "bwrap") assert.notEqual(write.exitCode, 0);
      assert.equal(existsSync(join(home, ".ssh/authorized_keys")), false);
    });

    test("a hidden directory stays hidden when cwd lies inside it", async () => {
      const secret = tempDir("nightshift-secret-");
      writeFileSync(join(secret, "token.txt"), "FAKE TOKEN\n");
      mkdirSync(join(secret, "work"));
      const hiding = createSandbox({ env: baseEnv, readOnlyHidden: [secret] });
      const result = await hiding.run("cat ../token.txt; echo ok > here.txt", limits(join(secret, "work")));
      assert.doesNotMatch(result.output, /FAKE TOKEN/);
      assert.equal(readFileSync(join(secret, "work/here.txt"), "utf8"), "ok\n");
    });

    test("cannot reach a server on the host's 127.0.0.1", async () => {
      const server = createServer((_request, response) => response.end("reachable"));
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      try {
        const { port } = server.address() as AddressInfo;
        const fetch = `exec 3<>/dev/tcp/127.0.0.1/${port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3`;
        const control = await createUnsandboxed({ env: baseEnv }).run(fetch, limits(cwd));
        assert.match(control.output, /reachable/, "control: the server answers outside the sandbox");
        const inside = await sandbox.run(fetch, limits(cwd));
        assert.notEqual(inside.exitCode, 0);
        assert.doesNotMatch(inside.output, /reachable/);
        assert.match(inside.output, /Connection refused|Network is unreachable/);
      } finally {
        server.close();
      }
    });

    test("cannot reach host sockets under /run (D-Bus, docker, agents)", async () => {
      const { createServer: createNetServer } = await import("node:net");
      const dir = `/run/nightshift-test-${process.pid}-${backend}`;
      mkdirSync(dir, { recursive: true });
      const socketPath = join(dir, "host.sock");
      const server = createNetServer((socket) => socket.end("HELLO FROM THE HOST\n")).listen(socketPath);
      await new Promise((resolve) => server.once("listening", resolve));
      try {
        const command = `socat -T2 - UNIX-CONNECT:${socketPath} </dev/null`;
        const bare = await createUnsandboxed({ env: baseEnv }).run(command, limits(tempDir()));
        assert.match(bare.output, /HELLO FROM THE HOST/, "control: the socket answers outside the sandbox");
        const inside = await sandbox.run(command, limits(tempDir()));
        assert.notEqual(inside.exitCode, 0);
        assert.doesNotMatch(inside.output, /HELLO/);
      } finally {
        server.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

describe("bwrap sandbox: probe", needs("bwrap", "socat"), () => {
  let cwd: string;
  before(() => {
    cwd = tempDir();
  });

  test("probe fails with an install hint for a missing binary, and run then throws SandboxUnavailable", async () => {
    const missing = createBwrapSandbox({ env: baseEnv, bwrapPath: "/nonexistent/bin/bwrap" });
    const probe = await missing.probe();
    assert.equal(probe.ok, false);
    assert.equal(probe.kind, "bwrap");
    assert.match(probe.problem ?? "", /bubblewrap is not installed/);
    assert.match(probe.problem ?? "", /apt-get install bubblewrap/);
    assert.equal(await missing.probe(), probe, "the probe result is cached");
    await assert.rejects(missing.run("true", limits(cwd)), (error: unknown) => {
      assert.ok(error instanceof SandboxUnavailable);
      assert.equal(error.message, probe.problem);
      return true;
    });
  });

  test("probe reports bwrap's own complaint when namespaces cannot be created", async () => {
    const fake = join(tempDir(), "bwrap");
    writeFileSync(fake, "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n");
    chmodSync(fake, 0o755);
    const probe = await createBwrapSandbox({ env: baseEnv, bwrapPath: fake }).probe();
    assert.equal(probe.ok, false);
    assert.match(probe.problem ?? "", /cannot create namespaces here: bwrap: No permissions to create new namespace/);
    assert.match(probe.problem ?? "", /unprivileged_userns_clone=1/);
  });
});

// The behaviour both implementations share through one spawn helper. Concurrent, so the two
// real waits of the timeout tests overlap.
describe("bwrap sandbox: protected folders", needs("bwrap", "socat"), () => {
  test("keeps a read-only folder read-only inside a writable workdir, and a writable one inside it writable", async () => {
    const workdir = tempDir();
    const settings = join(workdir, ".nightshift");
    const workspace = join(settings, "workspace");
    mkdirSync(workspace, { recursive: true });
    writeFileSync(join(settings, "config.yaml"), "sandbox:\n  mode: bwrap\n");
    const sandbox = createBwrapSandbox({ env: baseEnv, readOnly: [settings] });
    const denied = await sandbox.run("echo 'sandbox: {mode: off}' > .nightshift/config.yaml", limits(workdir, { writable: [workspace] }));
    assert.notEqual(denied.exitCode, 0);
    assert.equal(readFileSync(join(settings, "config.yaml"), "utf8"), "sandbox:\n  mode: bwrap\n");
    const allowed = await sandbox.run("echo ok > notes.txt && echo ok > .nightshift/workspace/out.txt", limits(workdir, { writable: [workspace] }));
    assert.equal(allowed.exitCode, 0, allowed.output);
    assert.equal(readFileSync(join(workspace, "out.txt"), "utf8"), "ok\n");
  });
});

describe("srt sandbox: where it differs from bwrap", needs("srt"), () => {
  test("gives each command a private TMPDIR, removed after it; the rest of /tmp is read-only", async () => {
    const sandbox = createSrtSandbox({ env: baseEnv });
    const probe = join(tmpdir(), `nightshift-srt-probe-${process.pid}`);
    const result = await sandbox.run(`echo kept > "$TMPDIR/scratch" && cat "$TMPDIR/scratch" && echo "tmpdir=$TMPDIR"; echo leak > ${probe}`, limits(tempDir()));
    assert.match(result.output, /^kept$/m);
    const tmp = /^tmpdir=(.+)$/m.exec(result.output)?.[1] ?? "";
    assert.match(tmp, /nightshift-[^/]+\/srt-/);
    assert.equal(existsSync(tmp), false, "the command's TMPDIR is gone after it");
    assert.match(result.output, /Read-only file system/);
    assert.equal(existsSync(probe), false);
    await sandbox.close?.();
  });

  test("hides /run and other runs' scratch folders, which bwrap covers with empty ones", async () => {
    const sandbox = createSrtSandbox({ env: baseEnv });
    const other = join(tmpdir(), `nightshift-${process.getuid?.() ?? "user"}`, `srt-other-${process.pid}`);
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, "note"), "another run's file");
    try {
      const result = await sandbox.run(`cat ${other}/note; ls /run | wc -l`, limits(tempDir()));
      assert.doesNotMatch(result.output, /another run's file/);
      assert.match(result.output, /^0$/m, "nothing of /run");
    } finally {
      rmSync(other, { recursive: true, force: true });
      await sandbox.close?.();
    }
  });

  test("refuses a run whose workdir holds a read-only folder with a writable one inside, rather than leave it writable", async () => {
    const workdir = tempDir();
    const settings = join(workdir, ".nightshift");
    const workspace = join(settings, "workspace");
    mkdirSync(workspace, { recursive: true });
    writeFileSync(join(settings, "config.yaml"), "sandbox:\n  mode: srt\n");
    const sandbox = createSrtSandbox({ env: baseEnv, readOnly: [settings] });
    await assert.rejects(sandbox.run("echo 'sandbox: {mode: off}' > .nightshift/config.yaml", limits(workdir, { writable: [workspace] })), (error: unknown) => {
      assert.ok(error instanceof SandboxUnavailable);
      assert.match(error.message, /srt sandbox cannot keep .*\.nightshift read-only while .*workspace inside it stays writable; use a workdir that does not contain/);
      return true;
    });
    assert.equal(readFileSync(join(settings, "config.yaml"), "utf8"), "sandbox:\n  mode: srt\n");
    // A read-only folder inside the workdir with nothing writable inside it is fine.
    const denied = await sandbox.run("echo 'sandbox: {mode: off}' > .nightshift/config.yaml", limits(workdir));
    assert.notEqual(denied.exitCode, 0);
    assert.equal(readFileSync(join(settings, "config.yaml"), "utf8"), "sandbox:\n  mode: srt\n");
    await sandbox.close?.();
  });
});

describe("limits, abort and environment", { concurrency: true }, () => {
  for (const [kind, make] of [
    ["bwrap", createBwrapSandbox],
    ["srt", createSrtSandbox],
    ["unsandboxed", createUnsandboxed],
  ] as const) {
    describe(kind, { concurrency: true, ...(kind === "unsandboxed" ? {} : SANDBOXES[kind].needs) }, () => {
      let cwd: string;
      before(() => {
        cwd = tempDir();
      });
      after(() => make({ env: baseEnv }).close?.());
      const secretEnv = {
        ...baseEnv,
        ANTHROPIC_API_KEY: "sk-ant-api03-fake",
        TELEGRAM_BOT_TOKEN: "123456789:AAFakeFakeFakeFakeFakeFakeFakeFake12",
        INNOCENT_LOOKING: "sk-proj-fake-value",
        CHAT_ID: "987654321:AAAnotherFakeTelegramBotTokenValue1",
        MY_SETTING: "kept",
      };

      test("the command sees no secrets but keeps PATH and HOME", async () => {
        const sandbox: Sandbox = make({ env: secretEnv });
        const result = await sandbox.run("env", limits(cwd));
        assert.equal(result.exitCode, 0, result.output);
        assert.doesNotMatch(result.output, /ANTHROPIC|TELEGRAM|sk-|AAFake|AAAnother/);
        const lines = result.output.split("\n");
        assert.ok(lines.includes(`PATH=${process.env.PATH}`), result.output);
        assert.ok(lines.includes(`HOME=${homedir()}`), result.output);
        assert.ok(lines.includes("MY_SETTING=kept"), result.output);
      });

      test("a timeout kills the command and its background children", async () => {
        const marker = join(cwd, `marker-${kind}`);
        const go = join(cwd, `go-${kind}`);
        // The child waits for a file the test makes only after the kill, not for a time: on a loaded
        // machine the 300 ms timer can fire seconds late, and a timed child could beat it.
        const result = await make({ env: baseEnv }).run(`(until [ -e ${go} ]; do sleep 0.05; done; touch ${marker}) & sleep 30`, limits(cwd, { timeoutMs: 300 }));
        assert.equal(result.timedOut, true);
        assert.equal(result.aborted, false);
        assert.equal(result.exitCode, null);
        // Killed processes take a moment to be torn down on a loaded machine: a survivor is still there after a second.
        for (let i = 0; i < 100 && processesMentioning(marker).length > 0; i++) await delay(10);
        assert.deepEqual(processesMentioning(marker), []);
        writeFileSync(go, "");
        await delay(300); // a survivor would see the file within 50 ms
        assert.equal(existsSync(marker), false, "the backgrounded child must have died with the command");
      });

      test("aborting the signal kills the command", async () => {
        const controller = new AbortController();
        const running = make({ env: baseEnv }).run("sleep 30", limits(cwd, { signal: controller.signal }));
        setTimeout(() => controller.abort(), 50);
        const result = await running;
        assert.equal(result.aborted, true);
        assert.equal(result.timedOut, false);
        assert.equal(result.exitCode, null);
      });

      test("an already aborted signal runs nothing", async () => {
        const result = await make({ env: baseEnv }).run(`touch ${cwd}/ran`, limits(cwd, { signal: AbortSignal.abort() }));
        assert.equal(result.aborted, true);
        assert.equal(existsSync(join(cwd, "ran")), false);
      });

      test("output beyond the cap is dropped and counted while the command runs to the end", async () => {
        const result = await make({ env: baseEnv }).run(
          "head -c 300000 /dev/zero | tr '\\0' a; head -c 100000 /dev/zero | tr '\\0' b >&2; exit 7",
          limits(cwd, { maxOutputBytes: 1000 }),
        );
        assert.equal(result.exitCode, 7);
        assert.equal(result.output, "a".repeat(1000));
        assert.equal(result.droppedBytes, 399_000);
      });

      test("the cap never splits a UTF-8 character", async () => {
        const result = await make({ env: baseEnv }).run("printf 'é%.0s' $(seq 10)", limits(cwd, { maxOutputBytes: 5 }));
        assert.equal(result.output, "éé");
        assert.equal(result.droppedBytes, 16);
      });
    });
  }
});

describe("output after the command exits", { concurrency: true }, () => {
  // A child that calls setsid leaves the process group, so only the unsandboxed runner lets it
  // outlive the command (bwrap's pid namespace ends it); it keeps the output pipe open.
  test("giving up on pipes a leftover process holds open marks the output incomplete", async () => {
    // The command waits until the child has left its group (touch runs after setsid): were it to exit
    // first, the group kill at its exit would end the child, and nothing would hold the pipe.
    const result = await createUnsandboxed({ env: baseEnv }).run("echo early; setsid sh -c 'touch left; sleep 1; echo late' & until [ -e left ]; do sleep 0.01; done", limits(tempDir()));
    assert.equal(result.exitCode, 0);
    assert.equal(result.output, "early\n");
    assert.equal(result.incomplete, true);
  });

  test("a pipe that closes with the command is complete", async () => {
    const result = await createUnsandboxed({ env: baseEnv }).run("echo done", limits(tempDir()));
    assert.equal(result.output, "done\n");
    assert.equal(result.incomplete, undefined);
  });

  test("output dropped beyond the cap does not keep the wait going", async () => {
    // Writes past the cap every 0.1 s for 2 s after the command exited: were each dropped chunk to
    // restart the wait, the pipe would close on its own at the end and nothing would be missing.
    // The command fills the cap itself, and exits only once the writer has left its group, so the
    // result races neither the writer's start nor the group kill at the exit.
    const writer = "head -c 1000 /dev/zero; setsid sh -c 'touch left; for i in $(seq 20); do head -c 2000 /dev/zero; sleep 0.1; done' & until [ -e left ]; do sleep 0.01; done";
    const result = await createUnsandboxed({ env: baseEnv }).run(writer, limits(tempDir(), { maxOutputBytes: 1000 }));
    assert.equal(result.output, "\0".repeat(1000));
    assert.equal(result.incomplete, true);
  });
});

describe("scrubEnv", () => {
  test("drops secret names and secret-looking values, keeps the rest", () => {
    const clean = scrubEnv({
      PATH: "/usr/bin",
      HOME: "/home/me",
      LANG: "C.UTF-8",
      TERM: "xterm",
      OPENAI_API_KEY: "x",
      GITHUB_TOKEN: "x",
      DB_PASSWORD: "x",
      AWS_REGION: "eu-west-1",
      SSH_AUTH_SOCK: "/run/agent",
      NPM_CONFIG_CACHE: "/tmp",
      LOOKS_FINE: "sk-live-123",
      BOT: "123456:ABCdefGHIjklMNOpqrSTUvwxYZ0123456789",
      NIGHTSHIFT_DATABASE_URL: "postgres://nightshift@db.example.com/nightshift",
      REPLICA: "postgresql://app:s3cret@10.0.0.5:5432/app",
      HOMEPAGE: "https://example.com/a:b@c",
      UNSET: undefined,
    });
    assert.deepEqual(clean, { PATH: "/usr/bin", HOME: "/home/me", LANG: "C.UTF-8", TERM: "xterm", HOMEPAGE: "https://example.com/a:b@c" });
  });

  test("extra patterns add to the defaults and a missing PATH gets a default", () => {
    const clean = scrubEnv({ INTERNAL_URL: "http://x", API_KEY: "x", OTHER: "y" }, ["^INTERNAL_"]);
    assert.equal(clean.OTHER, "y");
    assert.equal("INTERNAL_URL" in clean, false);
    assert.equal("API_KEY" in clean, false);
    assert.match(clean.PATH ?? "", /\/usr\/bin/);
  });
});

describe("what a sandbox reports refusing", () => {
  test("reaches the model as a reason after the output, as blocked hosts do", async () => {
    const { createBashTool } = await import("../runtime/tools/bash.ts");
    const reporting: Sandbox = {
      kind: "fake",
      probe: async () => ({ ok: true, kind: "fake" }),
      run: async () => ({ exitCode: 1, output: "cat: /etc/secret: Operation not permitted\n", droppedBytes: 0, timedOut: false, aborted: false, durationMs: 1, violations: ["deny file-read-data /etc/secret"] }),
    };
    const bash = createBashTool(reporting, { timeoutMs: 1000, maxOutputBytes: 1000 });
    const cwd = tempDir();
    const context: ToolContext = { workdir: cwd, signal: new AbortController().signal, paths: { hidden: [], readOnly: [], writable: [] }, writable: [], readOnly: [], permissions: { check: async () => {} } };
    await assert.rejects(bash.execute({ command: "cat /etc/secret" }, context), (error: Error) => {
      assert.equal(error.message, "cat: /etc/secret: Operation not permitted\n[sandbox refused: deny file-read-data /etc/secret]\nexit code 1");
      return true;
    });
  });
});

describe("output the bash tool could not read", () => {
  test("is reported to the model after the output", async () => {
    const { createBashTool } = await import("../runtime/tools/bash.ts");
    const leaving: Sandbox = {
      kind: "fake",
      probe: async () => ({ ok: true, kind: "fake" }),
      run: async () => ({ exitCode: 0, output: "started\n", droppedBytes: 0, timedOut: false, aborted: false, durationMs: 1, incomplete: true }),
    };
    const bash = createBashTool(leaving, { timeoutMs: 1000, maxOutputBytes: 1000 });
    const context: ToolContext = { workdir: tempDir(), signal: new AbortController().signal, paths: { hidden: [], readOnly: [], writable: [] }, writable: [], readOnly: [], permissions: { check: async () => {} } };
    const text = await bash.execute({ command: "./serve &" }, context);
    assert.match(String(text), /^started\n\[output may be incomplete: [^\]]+\]\nexit code 0$/);
  });
});
