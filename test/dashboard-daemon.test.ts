import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { createServer, type Server } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { CLI, nightshift, until } from "./support/cli.ts";
import { tempDir } from "./support/home.ts";
import { freePort } from "./support/ports.ts";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** node:http, not fetch: fetch would drop the Host header these checks depend on. */
function call(host: string, port: number, path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: options.method ?? "GET", headers: options.headers ?? {} }, (res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

const refused = (host: string, port: number) => call(host, port, "/login").then(() => false, (error: NodeJS.ErrnoException) => ["ECONNREFUSED", "EADDRNOTAVAIL", "ENETUNREACH", "EHOSTUNREACH"].includes(error.code ?? ""));

let cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

async function startDaemon(port: number): Promise<{ child: ChildProcess; home: string; env: NodeJS.ProcessEnv; output: () => string; exited: Promise<number | null> }> {
  const dir = tempDir("nightshift-dash-daemon-", "/var/tmp");
  const home = join(dir.path, "home");
  mkdirSync(home);
  writeFileSync(join(home, "config.yaml"), `dashboard:\n  port: ${port}\n`);
  const env = { ...process.env, NIGHTSHIFT_HOME: home, ANTHROPIC_API_KEY: "sk-ant-dashboard-test", TELEGRAM_BOT_TOKEN: "" };
  const child = spawn(process.execPath, [CLI, "start"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  cleanups.push(() => dir.cleanup(), () => void (child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")));
  await until(() => output.includes("Nightshift is running") || child.exitCode !== null, "the daemon to start");
  assert.match(output, /Nightshift is running/, output);
  return { child, home, env, output: () => output, exited };
}

describe("the daemon's dashboard", () => {
  it("listens on 127.0.0.1 only, signs in with a printed link, and closes when the daemon stops", async () => {
    const port = await freePort();
    const daemon = await startDaemon(port);
    const host = `127.0.0.1:${port}`;
    await until(() => daemon.output().includes("Dashboard: "), "the dashboard line");
    assert.equal((await call("127.0.0.1", port, "/")).status, 401);
    // 127.0.0.2 is loopback too: a server bound to 0.0.0.0 would answer there, one bound to 127.0.0.1 does not.
    assert.ok(await refused("127.0.0.2", port), "not on 127.0.0.2");
    assert.ok(await refused("::1", port), "not on [::1]");
    const other = Object.values(networkInterfaces()).flat().find((address) => address && !address.internal && address.family === "IPv4");
    if (other) assert.ok(await refused(other.address, port), `not on ${other.address}`);

    const printed = await nightshift(["dashboard"], daemon.env);
    assert.equal(printed.code, 0, printed.stderr);
    const secret = new RegExp(`^http://127\\.0\\.0\\.1:${port}/login#([A-Za-z0-9_-]{43})$`, "m").exec(printed.stdout)?.[1];
    assert.ok(secret, printed.stdout);
    const login = await call("127.0.0.1", port, "/login", { method: "POST", headers: { host, origin: `http://${host}`, "content-type": "application/json" }, body: JSON.stringify({ secret }) });
    assert.equal(login.status, 200, login.body);
    const cookie = String(login.headers["set-cookie"]).split(";")[0]!;
    const home = await call("127.0.0.1", port, "/", { headers: { host, cookie } });
    assert.equal(home.status, 200);
    // The Now page over the daemon's own tasks, approvals and spend (budget.daily_usd defaults to $10).
    assert.match(home.body, /<h1>Now<\/h1>[^]*No approval is waiting[^]*\$0\.00 of \$10\.00 \(budget\.daily_usd\)[^]*queued: 0/);
    assert.equal((await call("127.0.0.1", port, "/", { headers: { host: `evil.example:${port}`, cookie } })).status, 421);

    const logout = await nightshift(["dashboard", "--logout-all"], daemon.env);
    assert.match(logout.stdout, /Ended 1 dashboard session/);
    assert.equal((await call("127.0.0.1", port, "/", { headers: { host, cookie } })).status, 401);

    daemon.child.kill("SIGTERM");
    assert.equal(await daemon.exited, 0);
    assert.ok(await refused("127.0.0.1", port), "closed with the daemon");
  });

  it("says in one line that the port is in use, and runs on without the dashboard", async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const port = (blocker.address() as { port: number }).port;
    const daemon = await startDaemon(port);
    await until(() => daemon.output().includes("dashboard not started"), "the dashboard's complaint");
    const lines = daemon.output().split("\n").filter((line) => line.includes("dashboard not started"));
    assert.deepEqual(lines, [`! dashboard not started: port ${port} on 127.0.0.1 is in use; set dashboard.port in config.yaml to a free port`]);
    assert.equal(daemon.child.exitCode, null, "still running");
    assert.doesNotMatch(daemon.output(), /\n\s+at .+:\d+:\d+/, "no stack trace");
    const status = await nightshift(["status"], daemon.env);
    assert.equal(status.code, 0, status.stderr);
    daemon.child.kill("SIGTERM");
    assert.equal(await daemon.exited, 0);
  });
});
