import { Hono } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { html } from "hono/html";
import type { Clock, TraceLogger } from "../runtime/index.ts";
import { createAuthStore, csrfTokenOf, SESSION_TTL_MS, type AuthStore } from "./auth-store.ts";
import { guard, hostOf, originsFor, securityHeaders, SESSION_COOKIE } from "./guard.ts";
import { LOGIN_SCRIPT } from "./login-script.ts";

export interface DashboardDeps {
  /** `state/dashboard/`: login links and sessions (hashes only). */
  dir: string;
  clock: Clock;
  /** Logins and failed attempts are written here, never a secret. */
  trace: Pick<TraceLogger, "info" | "warn">;
  /** `dashboard.port`: the loopback Host names and origins it answers to. */
  port: number;
  /** `dashboard.public_url`: the tunnel's https origin, also answered to. */
  publicUrl?: string;
}

/**
 * The dashboard as a Hono app: security layer, one-time-link login, and (for now) a page that
 * says you are signed in. Serve it with `serveDashboard`; tests call `app.request()`.
 */
export function createDashboard(deps: DashboardDeps): Hono<{ Variables: { session: string } }> {
  const auth: AuthStore = createAuthStore(deps.dir, deps.clock);
  const origins = originsFor(deps.port, deps.publicUrl);
  const app = new Hono<{ Variables: { session: string } }>();
  app.use(securityHeaders());
  app.use(guard({ origins, auth }));

  app.get("/assets/login.js", (c) => c.body(LOGIN_SCRIPT, 200, { "Content-Type": "text/javascript; charset=utf-8" }));
  // A GET never spends a link: link previews and prefetchers load pages.
  app.get("/login", (c) => c.html(page("Sign in", html`<h1>Nightshift</h1>
<p><button id="login" type="button">Sign in to the dashboard</button></p>
<p id="status" role="status"></p>
<script src="/assets/login.js"></script>`)));

  app.post("/login", async (c) => {
    const host = hostOf(c);
    const body = (await c.req.json().catch(() => undefined)) as { secret?: unknown } | undefined;
    const secret = typeof body?.secret === "string" ? body.secret : "";
    const result = auth.spendLink(secret);
    if (result !== "ok") {
      deps.trace.warn({ event: "dashboard_login_failed", reason: result, host }, `dashboard login refused (${result} link)`);
      return c.text("This login link was already used, has expired or is not one: run `nightshift dashboard` for a new one.\n", 403);
    }
    const session = auth.createSession();
    setCookie(c, SESSION_COOKIE, session.id, {
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
      maxAge: SESSION_TTL_MS / 1000,
      secure: new URL(c.req.url).protocol === "https:" || host === origins.secureHost,
    });
    deps.trace.info({ event: "dashboard_login", host }, "dashboard login");
    return c.json({ ok: true });
  });

  app.get("/", (c) => c.html(page("Nightshift", html`<h1>Nightshift</h1>
<p>Signed in. The dashboard's pages come next: see issue 12.</p>
<form method="post" action="/logout"><input type="hidden" name="_csrf" value="${csrfTokenOf(c.get("session"))}"><button type="submit">Sign out</button></form>`)));

  app.post("/logout", (c) => {
    auth.endSession(c.get("session"));
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    deps.trace.info({ event: "dashboard_logout", host: hostOf(c) }, "dashboard logout");
    return c.html(page("Signed out", html`<h1>Signed out</h1><p>Run <code>nightshift dashboard</code> for a new login link.</p>`));
  });

  app.notFound((c) => c.text("Not found.\n", 404));
  return app;
}

function page(title: string, body: ReturnType<typeof html>) {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title></head>
<body>${body}</body></html>`;
}
