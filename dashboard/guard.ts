import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { csrfTokenOf, sameToken, type AuthStore } from "./auth-store.ts";

/**
 * The dashboard's security layer, run before any route. Loopback is never trusted: a tunnel
 * delivers every stranger from 127.0.0.1, so each request is judged by what it carries.
 *
 * 1. Host must be one of ours (stops DNS rebinding): 421 otherwise.
 * 2. Every unsafe method (anything but GET, HEAD, OPTIONS) needs an Origin of ours, a
 *    Sec-Fetch-Site that is absent or same-origin, and a JSON or form body: 403 or 415 otherwise.
 * 3. Every route but the login page, its script and its POST needs a live session cookie: 401.
 * 4. An unsafe request inside a session also needs the session's CSRF token, in the
 *    `X-CSRF-Token` header or a form's `_csrf` field: 403.
 */

export const SESSION_COOKIE = "ns_session";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
/** Reachable without a session: the login page, its script, and the POST that spends a link. */
const OPEN_PATHS = new Set(["/login", "/assets/login.js"]);
const BODY_TYPES = new Set(["application/json", "application/x-www-form-urlencoded"]);

export interface Origins {
  /** Host header values we answer to, lower case: 127.0.0.1:PORT, localhost:PORT, [::1]:PORT, the public host. */
  hosts: Set<string>;
  /** Origins allowed to send unsafe requests. */
  origins: Set<string>;
  /** The public origin when it is https (cookies from it are Secure). */
  secureHost?: string;
}

export function originsFor(port: number, publicUrl?: string): Origins {
  const loopback = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
  const hosts = new Set(loopback);
  const origins = new Set(loopback.map((host) => `http://${host}`));
  if (!publicUrl) return { hosts, origins };
  const url = new URL(publicUrl);
  hosts.add(url.host.toLowerCase());
  origins.add(url.origin.toLowerCase());
  return { hosts, origins, ...(url.protocol === "https:" ? { secureHost: url.host.toLowerCase() } : {}) };
}

/** The request's Host: the header when present (a real socket), else the URL's (app.request). */
export function hostOf(c: Context): string {
  return (c.req.header("host") ?? new URL(c.req.url).host).toLowerCase();
}

/** Headers on every response, refusals included. */
export function securityHeaders(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    const headers = c.res.headers;
    headers.set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    headers.set("X-Frame-Options", "DENY");
    // Not no-referrer: under it a browser sends `Origin: null` with a form's POST, and the guard
    // would refuse every form on the page. same-origin sends no Referer to any other site.
    headers.set("Referrer-Policy", "same-origin");
    headers.set("Cache-Control", "no-store");
    headers.set("X-Content-Type-Options", "nosniff");
  };
}

export function guard(options: { origins: Origins; auth: AuthStore }): MiddlewareHandler<{ Variables: { session: string } }> {
  const { origins, auth } = options;
  const list = [...origins.hosts].join(", ");
  return async (c, next) => {
    if (!origins.hosts.has(hostOf(c))) return c.text(`This dashboard answers only at ${list} (dashboard.port, dashboard.public_url).\n`, 421);
    const unsafe = !SAFE_METHODS.has(c.req.method);
    if (unsafe) {
      const origin = c.req.header("origin")?.toLowerCase();
      if (!origin || !origins.origins.has(origin)) return c.text("Refused: a change must come from the dashboard's own page (Origin).\n", 403);
      const site = c.req.header("sec-fetch-site");
      if (site !== undefined && site !== "same-origin") return c.text("Refused: a change must come from the dashboard's own page (Sec-Fetch-Site).\n", 403);
      const type = c.req.header("content-type")?.split(";")[0]?.trim().toLowerCase();
      if (!type || !BODY_TYPES.has(type)) return c.text("Refused: a change is sent as JSON or as a form.\n", 415);
    }
    if (OPEN_PATHS.has(c.req.path)) return next();
    const session = getCookie(c, SESSION_COOKIE);
    if (!session || !auth.hasSession(session)) return c.text("Not signed in: run `nightshift dashboard` on the machine for a one-time login link.\n", 401);
    if (unsafe) {
      const given = c.req.header("x-csrf-token") ?? (await formField(c, "_csrf"));
      if (!sameToken(given, csrfTokenOf(session))) return c.text("Refused: this change lacks the page's token; reload the page and try again.\n", 403);
    }
    c.set("session", session);
    return next();
  };
}

/** A form field, or undefined for JSON or an unreadable body. Hono caches the parsed body for the route. */
async function formField(c: Context, name: string): Promise<string | undefined> {
  if (!c.req.header("content-type")?.toLowerCase().startsWith("application/x-www-form-urlencoded")) return undefined;
  try {
    const value = (await c.req.parseBody())[name];
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}
