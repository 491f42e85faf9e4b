import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage } from "node:http";
import { connect, createServer as createTcpServer } from "node:net";
import type { AddressInfo, Server } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createBwrapSandbox } from "../runtime/sandbox/bwrap.ts";
import { createSrtSandbox } from "../runtime/sandbox/srt.ts";
import { startNetworkProxy } from "../runtime/sandbox/proxy.ts";
import type { NetworkDecision, NetworkProxy, NetworkRequest } from "../runtime/sandbox/proxy.ts";
import type { RunOptions, Sandbox } from "../runtime/sandbox/sandbox.ts";
import { LINUX_BACKENDS, needs } from "./support/prerequisites.ts";

const baseEnv = { PATH: process.env.PATH, LANG: "C.UTF-8", HOME: homedir() };
const hasCurl = (() => {
  try {
    execFileSync("bash", ["-c", "command -v curl"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

const tempDirs: string[] = [];
function tempDir(parent = tmpdir()): string {
  const dir = realpathSync(mkdtempSync(join(parent, "nightshift-net-")));
  tempDirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Live processes in the given pid namespace (`pid:[inode]`), with their command lines. Zombies do
 * not count: the namespace's own init stays one until the host's init reaps it.
 */
function processesIn(namespace: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/pid`) !== namespace) continue;
      if (/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"))) continue;
      found.push(`${pid}: ${readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ")}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

async function listening<T extends Server>(server: T): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

/** Sends `text` to the proxy socket from the host and returns everything it answers until it closes. */
function exchange(socketPath: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.once("error", reject);
    socket.once("close", () => resolve(Buffer.concat(chunks).toString("utf8")));
  });
}

const basic = (token: string) => `Basic ${Buffer.from(`nightshift:${token}`).toString("base64")}`;

/**
 * Bash that speaks raw HTTP to the in-sandbox proxy port: the given request lines, with the run's
 * token (read back from HTTP_PROXY) as Proxy-Authorization unless `auth` says otherwise.
 */
function rawProxyRequest(lines: string[], auth: "token" | "none" | "wrong" = "token"): string {
  const credentials = {
    token: `"Proxy-Authorization: Basic $(printf 'nightshift:%s' "$t" | base64 -w0)"`,
    wrong: `"Proxy-Authorization: Basic $(printf 'nightshift:not-a-token' | base64 -w0)"`,
    none: "",
  }[auth];
  const quoted = lines.map((line) => `'${line}'`).join(" ");
  return `t=\${HTTP_PROXY#http://nightshift:}; t=\${t%@*}; exec 3<>/dev/tcp/127.0.0.1/3128 || exit 9; printf '%s\\r\\n' ${quoted} ${credentials} '' >&3`;
}

// Against both Linux sandboxes. srt's relay listens on the same in-sandbox port (3128) as ours.
for (const backend of LINUX_BACKENDS) {
  const create = backend === "srt" ? createSrtSandbox : createBwrapSandbox;
  describe(`sandbox network through the filtering proxy (${backend})`, backend === "srt" ? needs("srt") : needs("bwrap", "socat"), () => {
    let proxy: NetworkProxy;
    let sandbox: Sandbox;
    let cwd: string;
    let allowedPort: number;
    let deniedPort: number;
    let echoPort: number;
    const seenByAllowed: IncomingMessage[] = [];
    const seenByDenied: IncomingMessage[] = [];
    const asked: Omit<NetworkRequest, "signal">[] = [];
    let decisionDelayMs = 0;
    let registrations = 0;

    const allowedServer = createServer((request, response) => {
      seenByAllowed.push(request);
      response.end(`hello from upstream ${request.method} ${request.url}\n`);
    });
    const deniedServer = createServer((request, response) => {
      seenByDenied.push(request);
      response.end("the denied server answered\n");
    });
    const echoServer = createTcpServer((socket) => {
      socket.on("error", () => socket.destroy());
      socket.pipe(socket);
    });

    async function decide(request: NetworkRequest): Promise<NetworkDecision> {
      asked.push({ host: request.host, port: request.port, sessionKey: request.sessionKey });
      if (decisionDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, decisionDelayMs));
      const allow = request.host === "127.0.0.1" && (request.port === allowedPort || request.port === echoPort);
      return { allow, reason: allow ? "allowed by the test" : "not in the allowlist" };
    }

    const run = (command: string, extra: Partial<RunOptions> = {}) =>
      sandbox.run(command, { cwd, timeoutMs: 10_000, maxOutputBytes: 64 * 1024, sessionKey: "session-42", ...extra });

    before(async () => {
      cwd = tempDir();
      allowedPort = await listening(allowedServer);
      deniedPort = await listening(deniedServer);
      echoPort = await listening(echoServer);
      const started = await startNetworkProxy({ socketPath: join(tempDir(), "proxy", "proxy.sock"), decide, tcp: backend === "srt" });
      proxy = {
        ...started,
        register(sessionKey) {
          registrations += 1;
          return started.register(sessionKey);
        },
      };
      sandbox = create({ env: baseEnv, network: { proxy } });
      const probe = await sandbox.probe();
      assert.equal(probe.ok, true, `${backend} must work on this machine: ${probe.problem}`);
    });

    after(async () => {
      await sandbox.close?.();
      await proxy.close();
      allowedServer.close();
      deniedServer.close();
      echoServer.close();
    });

    const reset = () => {
      asked.length = 0;
      seenByAllowed.length = 0;
      seenByDenied.length = 0;
      decisionDelayMs = 0;
    };

    test("an allowed host answers a plain HTTP request sent through the proxy, and the decision names the run's session", async () => {
      reset();
      const target = `127.0.0.1:${allowedPort}`;
      const result = await run(`${rawProxyRequest([`GET http://${target}/hello?x=1 HTTP/1.1`, "Host: evil.example", "Connection: close"])}; cat <&3`);
      assert.equal(result.exitCode, 0, result.output);
      assert.match(result.output, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(result.output, /hello from upstream GET \/hello\?x=1\n$/);
      assert.deepEqual(asked, [{ host: "127.0.0.1", port: allowedPort, sessionKey: "session-42" }]);
      const [seen] = seenByAllowed;
      assert.equal(seen?.headers.host, target, "upstream sees the target's host, never the client's Host header");
      assert.equal(seen?.headers["proxy-authorization"], undefined, "the run token never leaves the proxy");
    });

    test("curl uses the proxy from the environment, for plain HTTP and for a CONNECT tunnel", { skip: hasCurl ? false : "curl is not installed" }, async () => {
      reset();
      // The environment's NO_PROXY covers 127.0.0.1; --noproxy '' lets the test's loopback server play the internet.
      const result = await run(`curl -sS --noproxy '' http://127.0.0.1:${allowedPort}/plain && curl -sS -p --noproxy '' http://127.0.0.1:${allowedPort}/tunnelled`);
      assert.equal(result.exitCode, 0, result.output);
      assert.equal(result.output, "hello from upstream GET /plain\nhello from upstream GET /tunnelled\n");
      assert.equal(asked.length, 2);
    });

    test("a denied host gets 403 with the reason, and the upstream server never sees the request", async () => {
      reset();
      const result = await run(`${rawProxyRequest([`GET http://127.0.0.1:${deniedPort}/secret HTTP/1.1`, `Host: 127.0.0.1:${deniedPort}`, "Connection: close"])}; cat <&3`);
      assert.match(result.output, /^HTTP\/1\.1 403 Forbidden\r\n/);
      assert.match(result.output, /\r\nX-Nightshift-Blocked: not in the allowlist\r\n/);
      assert.match(result.output, /\r\n\r\nNightshift blocked 127\.0\.0\.1: not in the allowlist\n$/);
      assert.deepEqual(asked, [{ host: "127.0.0.1", port: deniedPort, sessionKey: "session-42" }]);
      assert.equal(seenByDenied.length, 0);
    });

    test("curl shows the block reason for a denied host", { skip: hasCurl ? false : "curl is not installed" }, async () => {
      reset();
      const result = await run(`curl -sS --noproxy '' http://127.0.0.1:${deniedPort}/; curl -sS -p --noproxy '' http://127.0.0.1:${deniedPort}/`);
      assert.match(result.output, /^Nightshift blocked 127\.0\.0\.1: not in the allowlist$/m);
      assert.match(result.output, /CONNECT tunnel failed, response 403/);
      assert.equal(seenByDenied.length, 0);
    });

    test("a CONNECT tunnel to an allowed host carries bytes both ways", async () => {
      reset();
      const target = `127.0.0.1:${echoPort}`;
      const tunnel = [
        rawProxyRequest([`CONNECT ${target} HTTP/1.1`, `Host: ${target}`]),
        `IFS= read -r status <&3; echo "status=\${status%$'\\r'}"`,
        `while IFS= read -r line <&3 && [[ $line != $'\\r' ]]; do :; done`,
        "printf 'ping through the tunnel\\n' >&3",
        `IFS= read -r reply <&3; echo "reply=$reply"`,
      ].join("; ");
      const result = await run(tunnel);
      assert.equal(result.exitCode, 0, result.output);
      assert.equal(result.output, "status=HTTP/1.1 200 Connection Established\nreply=ping through the tunnel\n");
      assert.deepEqual(asked, [{ host: "127.0.0.1", port: echoPort, sessionKey: "session-42" }]);
    });

    test("a slow decision keeps the client waiting, then succeeds", async () => {
      reset();
      decisionDelayMs = 200;
      const result = await run(`${rawProxyRequest([`GET http://127.0.0.1:${allowedPort}/slow HTTP/1.1`, "Connection: close"])}; cat <&3`);
      assert.match(result.output, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(result.output, /hello from upstream GET \/slow\n$/);
    });

    test("a request without the run's token gets 407 and no decision", async () => {
      reset();
      const request = [`GET http://127.0.0.1:${allowedPort}/ HTTP/1.1`, "Connection: close"];
      for (const auth of ["none", "wrong"] as const) {
        const result = await run(`${rawProxyRequest(request, auth)}; cat <&3`);
        assert.match(result.output, /^HTTP\/1\.1 407 Proxy Authentication Required\r\n/, auth);
        assert.match(result.output, /\r\nProxy-Authenticate: Basic realm="nightshift"\r\n/i, auth);
      }
      assert.deepEqual(asked, []);
      assert.equal(seenByAllowed.length, 0);
    });

    test("the run's token stops working when the run ends", async () => {
      const result = await run('t=${HTTP_PROXY#http://nightshift:}; echo "${t%@*}"');
      const token = result.output.trim();
      assert.match(token, /^[A-Za-z0-9_-]{20,}$/);
      const answer = await exchange(proxy.socketPath, `GET http://127.0.0.1:${allowedPort}/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${basic(token)}\r\nConnection: close\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 407 /);
    });

    test("direct connections, bypassing the proxy, still fail", async () => {
      const result = await run(`exec 3<>/dev/tcp/127.0.0.1/${allowedPort} && echo connected`);
      assert.notEqual(result.exitCode, 0);
      assert.doesNotMatch(result.output, /connected/);
      assert.match(result.output, /Connection refused|Network is unreachable/);
    });

    // srt's relay runs outside the command's own pid namespace (its seccomp helper nests one).
    if (backend === "bwrap") test("the relay runs beside the command, is not one of its jobs, and does not outlive it", async () => {
      const result = await run("sleep 0.05 & wait; readlink /proc/self/ns/pid; cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c 'TCP-LISTEN:312[8]' || true");
      assert.equal(result.exitCode, 0, result.output);
      const [namespace, relays] = result.output.trim().split("\n");
      assert.equal(relays, "1", "a bare `wait` returned, and exactly one relay was listening");
      assert.match(namespace ?? "", /^pid:\[\d+\]$/);
      // bwrap reports the exit as soon as its init has the command's status; the kernel then kills
      // what is left in the namespace (the relay) while that init exits: gone moments later, for sure.
      await waitFor(() => processesIn(namespace ?? "").length === 0);
    });

    test("without a network proxy, or without a sessionKey, a command has no network at all", async () => {
      reset();
      const before = registrations;
      const command = 'echo "proxy=${HTTP_PROXY:-none}"; ls /run/nightshift 2>&1; exec 3<>/dev/tcp/127.0.0.1/3128 && echo connected';
      // srt always has its relay: without our token, or with srt's own proxy (no network option), every request is refused.
      const request = `; printf 'GET http://127.0.0.1:${allowedPort}/ HTTP/1.1\\r\\nConnection: close\\r\\n\\r\\n' >&3; head -c 12 <&3`;
      const offline = create({ env: baseEnv });
      for (const [name, result] of [
        ["no network option", await offline.run(command + request, { cwd, timeoutMs: 10_000, maxOutputBytes: 4096, sessionKey: "session-42" })],
        ["no sessionKey", await run(command + request, { sessionKey: undefined })],
      ] as const) {
        assert.match(result.output, /^proxy=none$/m, name);
        assert.match(result.output, /No such file or directory/, name);
        if (backend === "bwrap") {
          assert.notEqual(result.exitCode, 0, name);
          assert.match(result.output, /Connection refused/, name);
          assert.doesNotMatch(result.output, /connected/, name);
        } else {
          // 407 from ours without a token; srt's own refuses too. On a loaded machine srt's relay may not
          // listen yet when the command connects: refused as well, which is no network either.
          assert.match(result.output, /HTTP\/1\.1 4\d\d|Connection refused/, name);
          assert.doesNotMatch(result.output, /HTTP\/1\.1 2\d\d/, name);
        }
      }
      assert.equal(seenByAllowed.length, 0);
      await offline.close?.();
      assert.equal(registrations, before, "no token was handed out");
      assert.deepEqual(asked, []);
    });
  });
}

describe("network proxy on its own", () => {
  let socketPath: string;
  let pending: NetworkRequest[] = [];
  let proxy: Awaited<ReturnType<typeof startNetworkProxy>>;

  before(async () => {
    socketPath = join(tempDir(), "run", "proxy.sock");
    proxy = await startNetworkProxy({
      socketPath,
      decide: (request) => {
        pending.push(request);
        // Never decides: only an abort ends it.
        return new Promise((_resolve, reject) => request.signal.addEventListener("abort", () => reject(new Error("aborted"))));
      },
    });
  });
  after(() => proxy.close());

  test("listens on a socket only its owner can use, in a private folder", async () => {
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
    assert.equal(statSync(join(socketPath, "..")).mode & 0o777, 0o700);
  });

  test("answers garbage with 400 and keeps serving", async () => {
    assert.match(await exchange(socketPath, "\x00\x01 not http at all\r\n\r\n"), /^HTTP\/1\.1 400 /);
    assert.match(await exchange(socketPath, "CONNECT nowhere HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 407 /);
    const { token, unregister } = proxy.register("s");
    try {
      assert.match(await exchange(socketPath, `CONNECT no-port HTTP/1.1\r\nProxy-Authorization: ${basic(token)}\r\n\r\n`), /^HTTP\/1\.1 400 /);
      assert.match(await exchange(socketPath, `GET /origin-form HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${basic(token)}\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 400 /);
    } finally {
      unregister();
    }
  });

  test("a client that hangs up, or a run that ends, aborts the pending decision without harm", async () => {
    pending = [];
    const first = proxy.register("hangs-up");
    const client = connect(socketPath, () => client.write(`CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: ${basic(first.token)}\r\n\r\n`));
    client.on("error", () => {});
    await waitFor(() => pending.length === 1);
    assert.deepEqual([pending[0]?.host, pending[0]?.port, pending[0]?.sessionKey], ["example.com", 443, "hangs-up"]);
    client.destroy();
    await waitFor(() => pending[0]?.signal.aborted === true);
    first.unregister();

    const second = proxy.register("ends");
    const answer = exchange(socketPath, `GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nProxy-Authorization: ${basic(second.token)}\r\n\r\n`);
    await waitFor(() => pending.length === 2);
    second.unregister();
    assert.equal(pending[1]?.signal.aborted, true);
    assert.equal(await answer, "", "the run's connection is closed with nothing sent");
    assert.match(await exchange(socketPath, "BREW /pot HTCPCP/1.0\r\n\r\n"), /^HTTP\/1\.1 400 /, "still serving");
  });
});

describe("sandbox probe with a network proxy", () => {
  test("reports a missing socat with an install hint", needs("bwrap", "socat"), async () => {
    // /var/tmp stays visible inside the sandbox (/tmp does not): a PATH with bash and true, no socat.
    const bin = tempDir(existsSync("/var/tmp") ? "/var/tmp" : homedir());
    symlinkSync(execFileSync("bash", ["-c", "type -P bash"], { encoding: "utf8" }).trim(), join(bin, "bash"));
    symlinkSync(execFileSync("bash", ["-c", "type -P true"], { encoding: "utf8" }).trim(), join(bin, "true"));
    const bwrapPath = execFileSync("bash", ["-c", "type -P bwrap"], { encoding: "utf8" }).trim();
    const proxy = await startNetworkProxy({ socketPath: join(tempDir(), "proxy.sock"), decide: async () => ({ allow: false, reason: "" }) });
    try {
      const probe = await createBwrapSandbox({ env: { PATH: bin }, bwrapPath, network: { proxy } }).probe();
      assert.equal(probe.ok, false);
      assert.match(probe.problem ?? "", /socat is not installed/);
      assert.match(probe.problem ?? "", /apt-get install socat/);
      assert.equal((await createBwrapSandbox({ env: { PATH: bin }, bwrapPath }).probe()).ok, true, "control: fine without network");
    } finally {
      await proxy.close();
    }
  });
});

describe("network proxy: where it connects", () => {
  test("connects to the address the decision checked, not to the name again (a DNS answer that changes in between gets nowhere new)", async () => {
    const upstream = createServer((request, response) => response.end(`reached ${request.headers.host}`));
    const port = await listening(upstream);
    // The name does not resolve at all: only the checked address can have been used.
    const proxy = await startNetworkProxy({ socketPath: join(tempDir(), "proxy.sock"), decide: async () => ({ allow: true, reason: "", address: "127.0.0.1" }) });
    const { token, unregister } = proxy.register("s");
    try {
      const answer = await exchange(proxy.socketPath, `GET http://checked.invalid:${port}/ HTTP/1.1\r\nHost: checked.invalid:${port}\r\nProxy-Authorization: ${basic(token)}\r\nConnection: close\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 200 /);
      assert.match(answer, new RegExp(`reached checked\\.invalid:${port}`), "the Host header is the name asked for");
    } finally {
      unregister();
      await proxy.close();
      upstream.close();
    }
  });
});

/** Polls a condition the proxy reaches asynchronously (a real socket event, not a timer we own). */
async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setImmediate(resolve));
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(condition(), "condition never became true");
}
