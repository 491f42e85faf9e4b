import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Clock } from "../runtime/index.ts";

/**
 * Login links and sessions of the dashboard, as files under `state/dashboard/`. Only SHA-256
 * hashes are stored, never a link secret or a session id: a copy of state/ signs no one in.
 *
 * A link is one file, created exclusively, so any process (`nightshift dashboard`) can create one
 * while the daemon spends them; spending renames the file away first, so of two concurrent
 * attempts exactly one wins.
 */

export const LINK_TTL_MS = 10 * 60_000;
export const SESSION_TTL_MS = 7 * 24 * 3_600_000;

export type SpendResult = "ok" | "unknown" | "expired" | "malformed";

export interface AuthStore {
  /** A new one-time link secret (32 random bytes, base64url); only its hash is written. */
  createLink(): { secret: string; expiresAt: number };
  /** Spends a link once: the first call with a live secret gets "ok", every later one "unknown". */
  spendLink(secret: string): SpendResult;
  /** A new session id (for the cookie); only its hash is written. */
  createSession(): { id: string; expiresAt: number };
  /** True for a session id that exists and has not expired. */
  hasSession(id: string): boolean;
  /** True while any session is live: someone can see the dashboard's approvals. */
  anySession(): boolean;
  endSession(id: string): void;
  /** Ends every session; returns how many there were. */
  logoutAll(): number;
}

interface Entry {
  created_at: number;
  expires_at: number;
}

const SECRET = /^[A-Za-z0-9_-]{43}$/; // 32 bytes in base64url

export function createAuthStore(dir: string, clock: Clock): AuthStore {
  const links = join(dir, "links");
  const sessions = join(dir, "sessions");
  for (const folder of [dir, links, sessions]) mkdirSync(folder, { recursive: true, mode: 0o700 });

  const write = (file: string, entry: Entry) => writeFileSync(file, JSON.stringify(entry), { flag: "wx", mode: 0o600 });
  const read = (file: string): Entry | undefined => {
    try {
      const value = JSON.parse(readFileSync(file, "utf8")) as Partial<Entry>;
      return typeof value.expires_at === "number" && typeof value.created_at === "number" ? (value as Entry) : undefined;
    } catch {
      return undefined;
    }
  };
  /** Removes expired entries so the folders do not grow; must not throw. */
  const sweep = (folder: string) => {
    for (const name of safeList(folder)) {
      const entry = read(join(folder, name));
      if (!entry || entry.expires_at <= clock.now()) rmSync(join(folder, name), { force: true });
    }
  };
  const create = (folder: string, ttl: number) => {
    sweep(folder);
    const secret = randomBytes(32).toString("base64url");
    const now = clock.now();
    write(join(folder, `${hashOf(secret)}.json`), { created_at: now, expires_at: now + ttl });
    return { secret, expiresAt: now + ttl };
  };

  return {
    createLink: () => create(links, LINK_TTL_MS),
    spendLink(secret) {
      if (!SECRET.test(secret)) return "malformed";
      const file = join(links, `${hashOf(secret)}.json`);
      const taken = join(links, `.spent-${hashOf(secret)}-${randomBytes(4).toString("hex")}`);
      try {
        renameSync(file, taken); // atomic: only one caller moves the file
      } catch {
        return "unknown";
      }
      const entry = read(taken);
      rmSync(taken, { force: true });
      return entry && entry.expires_at > clock.now() ? "ok" : "expired";
    },
    createSession() {
      const { secret, expiresAt } = create(sessions, SESSION_TTL_MS);
      return { id: secret, expiresAt };
    },
    hasSession(id) {
      if (!SECRET.test(id)) return false;
      const file = join(sessions, `${hashOf(id)}.json`);
      const entry = read(file);
      if (entry && entry.expires_at > clock.now()) return true;
      if (entry) rmSync(file, { force: true });
      return false;
    },
    anySession() {
      return safeList(sessions).some((name) => (read(join(sessions, name))?.expires_at ?? 0) > clock.now());
    },
    endSession(id) {
      if (SECRET.test(id)) rmSync(join(sessions, `${hashOf(id)}.json`), { force: true });
    },
    logoutAll() {
      const names = safeList(sessions);
      for (const name of names) rmSync(join(sessions, name), { force: true });
      return names.length;
    },
  };
}

/** The CSRF token of a session: derived from its id, so nothing more is stored and it dies with the session. */
export function csrfTokenOf(sessionId: string): string {
  return createHmac("sha256", sessionId).update("nightshift dashboard csrf").digest("base64url");
}

export function sameToken(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function hashOf(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

function safeList(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}
