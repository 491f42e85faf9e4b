import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { dashboardApprover } from "../dashboard/approver.ts";
import { createAuthStore, hashOf, LINK_TTL_MS, SESSION_TTL_MS } from "../dashboard/auth-store.ts";
import { dashboardCommand } from "../cli/dashboard.ts";
import { parseConfigText } from "../runtime/config.ts";
import { login, ORIGIN, PORT, send, setupDashboard, spend, tokenOf, type Setup } from "./support/dashboard.ts";

let current: Setup | undefined;
afterEach(() => {
  current?.cleanup();
  current = undefined;
});

const setup = (publicUrl?: string): Setup => (current = setupDashboard(publicUrl ? { publicUrl } : {}));

const traceLines = (s: Setup) => readFileSync(s.traceFile, "utf8").trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);

function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

describe("dashboard security", () => {
  it("refuses every route but the login page and its script without a session", async () => {
    const s = setup();
    for (const path of ["/", "/tasks", "/tasks/abc", "/tasks/abc/trace", "/tasks/abc/output/toolu_1", "/memory", "/memory/journal/2026-12-01", "/cost", "/health", "/live", "/live?task=abc", "/assets/app.css", "/assets/live.js", "/task/abc", "/nothing-here"]) {
      const response = await send(s, path);
      assert.equal(response.status, 401, path);
      assert.match(await response.text(), /nightshift dashboard/);
    }
    for (const path of ["/logout", "/approvals/abc", "/tasks/abc/cancel", "/memory/undo"]) {
      const post = await send(s, path, { method: "POST", type: "application/x-www-form-urlencoded", body: "_csrf=x" });
      assert.equal(post.status, 401, path);
    }
    assert.equal((await send(s, "/", { cookie: "A".repeat(43) })).status, 401, "an unknown session id");
    assert.equal((await send(s, "/login")).status, 200);
    assert.equal((await send(s, "/assets/login.js")).status, 200);
  });

  it("refuses a foreign Host, also with a valid session", async () => {
    const s = setup();
    const { session } = await login(s);
    assert.equal((await send(s, "/", { cookie: session })).status, 200);
    for (const host of ["evil.example", `evil.example:${PORT}`, "127.0.0.1:9999", "127.0.0.1", `0.0.0.0:${PORT}`]) {
      assert.equal((await send(s, "/", { cookie: session, host })).status, 421, host);
      assert.equal((await send(s, "/login", { host })).status, 421, host);
    }
    for (const host of [`localhost:${PORT}`, `[::1]:${PORT}`]) assert.equal((await send(s, "/", { cookie: session, host })).status, 200, host);
  });

  it("answers at dashboard.public_url's host and gives it a Secure cookie", async () => {
    const s = setup("https://ns.example.com");
    assert.equal((await send(s, "/login", { host: "ns.example.com" })).status, 200);
    const { setCookie } = await login(s, { host: "ns.example.com", origin: "https://ns.example.com" });
    assert.match(setCookie, /; Secure/);
    assert.equal((await send(s, "/login", { host: "ns.example.org" })).status, 421);
  });

  it("refuses a cross-origin POST, and a POST whose Sec-Fetch-Site is not same-origin", async () => {
    const s = setup();
    const { session } = await login(s);
    const token = await tokenOf(s, session);
    const form = { method: "POST", cookie: session, type: "application/x-www-form-urlencoded", body: `_csrf=${token}` };
    assert.equal((await send(s, "/logout", { ...form, origin: "https://evil.example" })).status, 403);
    assert.equal((await send(s, "/logout", { ...form, origin: `http://127.0.0.1:9999` })).status, 403);
    assert.equal((await send(s, "/logout", { ...form, headers: { "sec-fetch-site": "cross-site" } })).status, 403);
    assert.equal((await send(s, "/logout", { ...form, headers: { "sec-fetch-site": "same-site" } })).status, 403);
    const noOrigin = await s.app.request(`${ORIGIN}/logout`, { method: "POST", headers: { host: `127.0.0.1:${PORT}`, cookie: `ns_session=${session}`, "content-type": "application/x-www-form-urlencoded" }, body: `_csrf=${token}` });
    assert.equal(noOrigin.status, 403);
    for (const method of ["PUT", "DELETE", "PATCH", "PROPFIND"]) assert.equal((await send(s, "/", { method, cookie: session, origin: "https://evil.example", type: "application/json", body: "{}" })).status, 403, method);
    // None of those reached the action: the session is still good.
    assert.equal((await send(s, "/", { cookie: session })).status, 200);
    const ok = await send(s, "/logout", { ...form, headers: { "sec-fetch-site": "same-origin" } });
    assert.equal(ok.status, 200);
    assert.equal((await send(s, "/", { cookie: session })).status, 401, "signed out");
  });

  it("refuses a text/plain POST before it reaches an action, and spends nothing", async () => {
    const s = setup();
    const secret = s.link();
    const plain = await spend(s, secret, { type: "text/plain" });
    assert.equal(plain.status, 415);
    const { session } = await login(s);
    const token = await tokenOf(s, session);
    assert.equal((await send(s, "/logout", { method: "POST", cookie: session, type: "text/plain", body: `_csrf=${token}` })).status, 415);
    assert.equal((await send(s, "/logout", { method: "POST", cookie: session, type: "multipart/form-data; boundary=x", body: "" })).status, 415);
    assert.equal((await send(s, "/", { cookie: session })).status, 200, "still signed in");
    assert.equal((await spend(s, secret)).status, 200, "the refused text/plain POST did not spend the link");
  });

  it("refuses a form or JSON POST without the session's own token", async () => {
    const s = setup();
    const first = await login(s);
    const second = await login(s);
    const form = (body: string) => ({ method: "POST", cookie: first.session, type: "application/x-www-form-urlencoded", body });
    assert.equal((await send(s, "/logout", form(""))).status, 403);
    assert.equal((await send(s, "/logout", form("_csrf=wrong"))).status, 403);
    assert.equal((await send(s, "/logout", form(`_csrf=${await tokenOf(s, second.session)}`))).status, 403, "another session's token");
    assert.equal((await send(s, "/logout", { method: "POST", cookie: first.session, type: "application/json", body: "{}" })).status, 403);
    assert.equal((await send(s, "/", { cookie: first.session })).status, 200);
    const json = await send(s, "/logout", { method: "POST", cookie: first.session, type: "application/json", body: "{}", headers: { "x-csrf-token": await tokenOf(s, first.session) } });
    assert.equal(json.status, 200);
    assert.equal((await send(s, "/", { cookie: first.session })).status, 401);
    assert.equal((await send(s, "/", { cookie: second.session })).status, 200, "the other session lives on");
  });

  it("sets strict headers on every response, refusals included, and the login page has no inline script", async () => {
    const s = setup();
    for (const response of [await send(s, "/login"), await send(s, "/"), await send(s, "/", { host: "evil.example" }), await send(s, "/assets/login.js")]) {
      const csp = response.headers.get("content-security-policy") ?? "";
      assert.match(csp, /default-src 'self'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal(response.headers.get("x-frame-options"), "DENY");
      assert.equal(response.headers.get("referrer-policy"), "same-origin");
      assert.equal(response.headers.get("cache-control"), "no-store");
    }
    const page = await (await send(s, "/login")).text();
    assert.match(page, /<script src="\/assets\/login\.js"><\/script>/);
    assert.doesNotMatch(page, /<script>|<script [^>]*>[^<]+<\/script>|\son[a-z]+=/i);
    const script = await send(s, "/assets/login.js");
    assert.match(script.headers.get("content-type") ?? "", /text\/javascript/);
    assert.match(await script.text(), /location\.hash/);
  });
});

describe("dashboard login", () => {
  it("a GET of the login page spends nothing, whatever it carries", async () => {
    const s = setup();
    const secret = s.link();
    for (const path of ["/login", `/login?secret=${secret}`, `/login/${secret}`]) await send(s, path);
    await send(s, "/login", { method: "HEAD" });
    assert.equal(readdirSync(join(s.home, "state", "dashboard", "links")).length, 1);
    assert.equal((await spend(s, secret)).status, 200);
  });

  it("a link works once, then never", async () => {
    const s = setup();
    const secret = s.link();
    const first = await spend(s, secret);
    assert.equal(first.status, 200);
    assert.match(first.headers.get("set-cookie") ?? "", /ns_session=/);
    const again = await spend(s, secret);
    assert.equal(again.status, 403);
    assert.equal(again.headers.get("set-cookie"), null);
    assert.match(await again.text(), /nightshift dashboard/);
    assert.equal((await spend(s, "not-a-secret")).status, 403);
    assert.equal((await send(s, "/login", { method: "POST", type: "application/json", body: "{broken" })).status, 403);
    const events = traceLines(s).map((line) => [line.event, line.reason]);
    assert.deepEqual(events, [["dashboard_login", undefined], ["dashboard_login_failed", "unknown"], ["dashboard_login_failed", "malformed"], ["dashboard_login_failed", "malformed"]]);
  });

  it("a link expires after ten minutes", async () => {
    const s = setup();
    const early = s.link();
    const late = s.link();
    s.clock.advance(LINK_TTL_MS - 1000);
    assert.equal((await spend(s, early)).status, 200);
    s.clock.advance(1000);
    assert.equal((await spend(s, late)).status, 403);
    assert.equal(traceLines(s).at(-1)?.reason, "expired");
  });

  it("the session cookie is HttpOnly, SameSite=Strict, Path=/, and not Secure over plain loopback http", async () => {
    const s = setup();
    const { setCookie } = await login(s);
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    assert.match(setCookie, /Path=\//);
    assert.match(setCookie, new RegExp(`Max-Age=${SESSION_TTL_MS / 1000}`));
    assert.doesNotMatch(setCookie, /Secure/);
  });

  it("a session ends after seven days", async () => {
    const s = setup();
    const { session } = await login(s);
    s.clock.advance(SESSION_TTL_MS - 1000);
    assert.equal((await send(s, "/", { cookie: session })).status, 200);
    s.clock.advance(1000);
    assert.equal((await send(s, "/", { cookie: session })).status, 401);
  });

  it("`nightshift dashboard --logout-all` ends every session", async () => {
    const s = setup();
    const sessions = [(await login(s)).session, (await login(s)).session];
    const io = { home: s.home, clock: s.clock, port: PORT, daemonRunning: true };
    assert.match(dashboardCommand({ logoutAll: true }, io), /Ended 2 dashboard sessions/);
    for (const session of sessions) assert.equal((await send(s, "/", { cookie: session })).status, 401);
    assert.match(dashboardCommand({ logoutAll: true }, io), /No dashboard sessions/);
  });

  it("`nightshift dashboard` prints a link with the secret in the fragment, at public_url when set", async () => {
    const s = setup();
    const local = dashboardCommand({ logoutAll: false }, { home: s.home, clock: s.clock, port: 8123, daemonRunning: false });
    assert.match(local, /^http:\/\/127\.0\.0\.1:8123\/login#[A-Za-z0-9_-]{43}\n/);
    assert.match(local, /No daemon is running/);
    const tunnel = dashboardCommand({ logoutAll: false }, { home: s.home, clock: s.clock, port: 8123, publicUrl: "https://ns.example.com", daemonRunning: true });
    const secret = /^https:\/\/ns\.example\.com\/login#([A-Za-z0-9_-]{43})\n/.exec(tunnel)?.[1];
    assert.ok(secret, tunnel);
    assert.equal((await spend(s, secret)).status, 200);
  });

  it("keeps the secret and the session id out of the trace and out of every file under state/", async () => {
    const s = setup();
    const secret = s.link();
    const response = await spend(s, secret);
    const session = /ns_session=([^;]+)/.exec(response.headers.get("set-cookie") ?? "")?.[1];
    assert.ok(session);
    await spend(s, secret); // a failed attempt with the same secret
    const files = [s.traceFile, ...filesUnder(join(s.home, "state"))];
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      for (const value of [secret, session]) {
        assert.ok(!text.includes(value) && !file.includes(value), `${file} holds a secret`);
      }
    }
    const sessionFiles = readdirSync(join(s.home, "state", "dashboard", "sessions"));
    assert.deepEqual(sessionFiles, [`${hashOf(session)}.json`]);
    for (const file of filesUnder(join(s.home, "state", "dashboard"))) assert.equal(statSync(file).mode & 0o777, 0o600, file);
    for (const folder of ["", "links", "sessions"]) assert.equal(statSync(join(s.home, "state", "dashboard", folder)).mode & 0o777, 0o700, folder);
    assert.ok(traceLines(s).some((line) => line.event === "dashboard_login"));
    assert.ok(traceLines(s).some((line) => line.event === "dashboard_login_failed"));
  });
});

describe("the dashboard as an approver", () => {
  it("counts only while someone holds a live session: none at first, one after a login, none once it expires or all are logged out", async () => {
    const s = setup();
    const { approver, signedIn } = dashboardApprover(join(s.home, "state", "dashboard"), s.clock);
    assert.equal(approver.name, "dashboard");
    assert.equal(signedIn(), false, "nobody has signed in: an ask is denied at once rather than left unseen");
    await login(s);
    assert.equal(signedIn(), true);
    s.clock.advance(SESSION_TTL_MS);
    assert.equal(signedIn(), false, "an expired session sees nothing");
    await login(s);
    createAuthStore(join(s.home, "state", "dashboard"), s.clock).logoutAll();
    assert.equal(signedIn(), false);
  });
});

describe("dashboard config", () => {
  it("defaults to port 7420 and no public URL", () => {
    assert.deepEqual(parseConfigText("", "config.yaml").dashboard, { port: 7420 });
  });

  it("refuses a public_url that is not an https origin, naming the setting", () => {
    for (const value of ["http://ns.example.com", "not a url", "https://ns.example.com/dashboard"]) {
      assert.throws(() => parseConfigText(`dashboard:\n  public_url: ${value}\n`, "config.yaml"), (error: Error) => {
        assert.match(error.message, /`dashboard\.public_url`/);
        assert.match(error.message, /https/);
        return true;
      }, value);
    }
    assert.throws(() => parseConfigText("dashboard:\n  port: 70000\n", "config.yaml"), /`dashboard\.port`/);
    assert.equal(parseConfigText("dashboard:\n  public_url: https://ns.example.com\n", "config.yaml").dashboard.public_url, "https://ns.example.com");
  });
});
