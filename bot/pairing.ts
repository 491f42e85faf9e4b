import { randomBytes, randomInt, scrypt, timingSafeEqual } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Clock } from "../runtime/clock.ts";
import { ConfigError } from "../runtime/errors.ts";

/**
 * Who may steer Nightshift from Telegram. `nightshift pair` makes a one-time code; the daemon's bot
 * redeems it when a user sends `/start CODE`, and the sender becomes a paired user.
 *
 * Two processes share these files (the CLI writes the code, the daemon redeems it), so every call
 * re-reads them and every write is atomic (temp file + rename). Only a salted scrypt hash of the code
 * is stored: the code has about 40 bits, which a fast hash would give away to anyone who reads the
 * record (the shared store's database) well within the code's 10 minutes.
 * With several machines on one PostgreSQL the code's record lives in the store instead
 * (`PairingCodes`, runtime/store/pg-pairing.ts), so a code made on any machine reaches the bot on
 * whichever machine runs it; the paired users stay in users.json, shared by cli/telegram-lease.ts.
 */

export interface TelegramUser {
  id: number;
  username?: string;
  first_name?: string;
}

export interface PairedUser extends TelegramUser {
  paired_at: number;
}

export type RedeemResult =
  | { ok: true; user: PairedUser }
  | { ok: false; problem: "none" | "wrong" | "expired" | "used" | "locked"; message: string };

export type PairingState = "none" | "waiting" | "paired" | "expired" | "locked";

export interface PairingStatus {
  state: PairingState;
  /** Set whenever a code exists; also tells one code from the next. */
  expiresAt?: number;
  pairedUser?: PairedUser;
  wrongAttempts: Array<{ user: TelegramUser; at: number }>;
}

export interface PairingStore {
  /** A new one-time code like "K7P2-MX4Q", valid CODE_TTL_MS; replaces any earlier code. */
  newCode(): Promise<{ code: string; expiresAt: number }>;
  /**
   * `/start CODE` from a Telegram user. The code is accepted with or without the dash, in any case.
   * The MAX_WRONG_ATTEMPTS-th wrong code burns it ("locked"); a used code never works twice. An empty
   * code (the START button alone) is answered "wrong" but not counted.
   */
  redeem(code: string, user: TelegramUser): Promise<RedeemResult>;
  /** Throws ConfigError naming users.json when it is damaged: paired users are never dropped silently. */
  users(): PairedUser[];
  isPaired(id: number): boolean;
  /** False when `id` was not paired. */
  remove(id: number): boolean;
  /** A user paired on another machine (several machines share paired users); false if paired here already. */
  adopt(user: PairedUser): boolean;
  /** What became of the latest code, for `nightshift pair` while it waits. */
  status(): Promise<PairingStatus>;
}

/**
 * Where the latest code's record is kept: pairing.json in this home (`fileCodes`), or with several
 * machines the shared store (runtime/store/pg-pairing.ts). The record is kept as it is written and
 * checked here when read, so both keep the same thing: the hash, the expiry, the wrong attempts and
 * who used it. The shared one throws when the store cannot be reached.
 */
export interface PairingCodes {
  /** The latest code's record as written; undefined when there is none. */
  read(): Promise<unknown>;
  /** Replaces any earlier code. */
  replace(record: unknown): Promise<void>;
  /**
   * Reads the latest record and writes back what `decide` returns (nothing when `write` is
   * undefined), with no other change in between where several processes could redeem at once.
   * `decide` may write this machine's files: when writing the record fails after it, the code stays open.
   */
  change<T>(decide: (record: unknown) => Promise<Decided<T>> | Decided<T>): Promise<T>;
}

export type Decided<T> = { write?: unknown; result: T };

export const CODE_TTL_MS = 10 * 60_000;
export const MAX_WRONG_ATTEMPTS = 5;
/** No 0/O, 1/I/L: a code read off a screen is typed right. */
const ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/**
 * scrypt's cost: about 45 ms per check on a 2-CPU machine (16 MiB of memory), so trying the 2^40
 * codes against a record read from the database takes years, not the code's 10 minutes. A redeem
 * checks at most MAX_WRONG_ATTEMPTS + 1 times per code: a locked, used or expired code is not hashed.
 */
const SCRYPT = { N: 16_384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
const HASH_BYTES = 32;

interface Pairing {
  /** scrypt(code, salt), hex; an older record's `code_sha256` (no salt) reads as no code. */
  code_scrypt: string;
  salt: string;
  expires_at: number;
  /** Wrong attempts against this code. */
  attempts: { user: TelegramUser; at: number }[];
  used_by?: PairedUser;
}

/*
 * The two files are checked by hand rather than with zod: `nightshift pair --list` loads this
 * module and should start as fast as Node does. Each check returns a copy with only the known
 * fields, or throws a ShapeError naming the first field that is wrong.
 */
class ShapeError extends Error {}
const wrong = (path: string, expected: string): never => {
  throw new ShapeError(`${path || "top level"}: expected ${expected}`);
};
const objectAt = (value: unknown, path: string) => (typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : wrong(path, "an object"));
const listAt = (value: unknown, path: string) => (Array.isArray(value) ? (value as unknown[]) : wrong(path, "a list"));
const numberAt = (value: unknown, path: string) => (typeof value === "number" && Number.isFinite(value) ? value : wrong(path, "a number"));
const optionalText = (value: unknown, path: string) => (value === undefined || typeof value === "string" ? value : wrong(path, "text"));

function telegramUserOf(value: unknown, path: string): TelegramUser {
  const fields = objectAt(value, path);
  const id = Number.isSafeInteger(fields.id) ? (fields.id as number) : wrong(`${path}.id`, "a whole number");
  const username = optionalText(fields.username, `${path}.username`);
  const firstName = optionalText(fields.first_name, `${path}.first_name`);
  return { id, ...(username !== undefined ? { username } : {}), ...(firstName !== undefined ? { first_name: firstName } : {}) };
}

const pairedUserOf = (value: unknown, path: string): PairedUser => ({ ...telegramUserOf(value, path), paired_at: numberAt(objectAt(value, path).paired_at, `${path}.paired_at`) });

function usersFileOf(value: unknown): { users: PairedUser[] } {
  return { users: listAt(objectAt(value, "").users, "users").map((user, index) => pairedUserOf(user, `users.${index}`)) };
}

function pairingOf(value: unknown): Pairing {
  const fields = objectAt(value, "");
  const hash = typeof fields.code_scrypt === "string" && /^[0-9a-f]{64}$/.test(fields.code_scrypt) ? fields.code_scrypt : wrong("code_scrypt", "a scrypt hash in hex");
  const salt = typeof fields.salt === "string" && /^[0-9a-f]{32}$/.test(fields.salt) ? fields.salt : wrong("salt", "16 bytes in hex");
  const attempts = listAt(fields.attempts, "attempts").map((attempt, index) => ({ user: telegramUserOf(objectAt(attempt, `attempts.${index}`).user, `attempts.${index}.user`), at: numberAt((attempt as { at?: unknown }).at, `attempts.${index}.at`) }));
  return { code_scrypt: hash, salt, expires_at: numberAt(fields.expires_at, "expires_at"), attempts, ...(fields.used_by !== undefined ? { used_by: pairedUserOf(fields.used_by, "used_by") } : {}) };
}

/** The code in `dir`/pairing.json (one machine): only the bot redeems, only `nightshift pair` replaces. */
export function fileCodes(dir: string): PairingCodes {
  const path = join(dir, "pairing.json");
  let queue: Promise<unknown> = Promise.resolve();
  const read = (): unknown => {
    try {
      return JSON.parse(readFileSync(path, "utf8"));
    } catch {
      return undefined; // missing or damaged: no code, and `nightshift pair` makes a new one
    }
  };
  return {
    read: async () => read(),
    replace: async (record) => writePrivate(dir, path, record),
    change(decide) {
      // One at a time in this process (a check awaits its hash): two tries at once are each counted, and a code is used once.
      const turn = queue.then(async () => {
        const { write, result } = await decide(read());
        if (write !== undefined) writePrivate(dir, path, write);
        return result;
      });
      queue = turn.catch(() => {});
      return turn;
    },
  };
}

/** Atomic (temp file + rename), readable by this user only. */
function writePrivate(dir: string, path: string, data: unknown): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = join(dir, `.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    writeFileSync(temp, JSON.stringify(data, null, 2) + "\n", { mode: 0o600 });
    renameSync(temp, path);
  } finally {
    rmSync(temp, { force: true });
  }
}

/** A record that does not read as a code counts as no code: `nightshift pair` makes a new one. */
function checked(record: unknown): Pairing | undefined {
  try {
    return record === undefined || record === null ? undefined : pairingOf(record);
  } catch {
    return undefined;
  }
}

/** `dir` is <home>/state/telegram; `codes`, where the code is kept (default: pairing.json there). */
export function createPairingStore(dir: string, clock: Clock, codes: PairingCodes = fileCodes(dir)): PairingStore {
  const usersPath = join(dir, "users.json");

  const readUsers = (): PairedUser[] => {
    let text: string;
    try {
      text = readFileSync(usersPath, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    let reason: string;
    try {
      return usersFileOf(JSON.parse(text)).users;
    } catch (error) {
      reason = (error as Error).message;
    }
    throw new ConfigError(usersPath, `${usersPath} is damaged (${reason}), so the paired Telegram users are unknown. Repair it by hand (shape: {"users": [{"id": 4242, "paired_at": 0}]}) or move it aside and run \`nightshift pair\` again.`);
  };

  const write = (path: string, data: unknown): void => writePrivate(dir, path, data);

  const stateOf = (pairing: Pairing): PairingState => {
    if (pairing.used_by) return "paired";
    if (pairing.attempts.length >= MAX_WRONG_ATTEMPTS) return "locked";
    return clock.now() >= pairing.expires_at ? "expired" : "waiting";
  };

  const store: PairingStore = {
    async newCode() {
      const raw = Array.from({ length: 8 }, () => ALPHABET[randomInt(ALPHABET.length)]).join("");
      const expiresAt = clock.now() + CODE_TTL_MS;
      const salt = randomBytes(16);
      await codes.replace({ code_scrypt: (await hashCode(raw, salt)).toString("hex"), salt: salt.toString("hex"), expires_at: expiresAt, attempts: [] } satisfies Pairing);
      return { code: `${raw.slice(0, 4)}-${raw.slice(4)}`, expiresAt };
    },

    redeem(code, from) {
      const normalized = code.replace(/[\s-]/g, "").toUpperCase();
      return codes.change(async (record): Promise<{ write?: Pairing; result: RedeemResult }> => {
        const pairing = checked(record);
        const again = "run `nightshift pair` on the computer running Nightshift for a new code";
        if (!pairing) return { result: { ok: false, problem: "none", message: `No pairing code is waiting; ${again}.` } };
        const state = stateOf(pairing);
        if (state === "paired") return { result: { ok: false, problem: "used", message: `That code has been used already; ${again}.` } };
        if (state === "locked") return { result: { ok: false, problem: "locked", message: `Too many wrong codes: that code no longer works; ${again}.` } };
        if (state === "expired") return { result: { ok: false, problem: "expired", message: `That code has expired; ${again}.` } };
        if (!normalized) return { result: { ok: false, problem: "wrong", message: "Send /start followed by the code that `nightshift pair` printed." } };

        // Hashes have equal length, so the comparison takes the same time whatever the input.
        if (!timingSafeEqual(await hashCode(normalized, Buffer.from(pairing.salt, "hex")), Buffer.from(pairing.code_scrypt, "hex"))) {
          const attempts = [...pairing.attempts, { user: cleanUser(from), at: clock.now() }];
          const left = MAX_WRONG_ATTEMPTS - attempts.length;
          const write = { ...pairing, attempts };
          if (left <= 0) return { write, result: { ok: false, problem: "locked", message: `Too many wrong codes: that code no longer works; ${again}.` } };
          return { write, result: { ok: false, problem: "wrong", message: `That code is not right (${left} ${left === 1 ? "try" : "tries"} left).` } };
        }

        const user: PairedUser = { ...cleanUser(from), paired_at: clock.now() };
        // Users first: a crash in between leaves the user paired and the code still open, never the reverse.
        write(usersPath, { users: [...readUsers().filter((known) => known.id !== user.id), user] });
        return { write: { ...pairing, used_by: user }, result: { ok: true, user } };
      });
    },

    users: readUsers,

    isPaired: (id) => readUsers().some((user) => user.id === id),

    adopt(user) {
      const users = readUsers();
      if (users.some((known) => known.id === user.id)) return false;
      write(usersPath, { users: [...users, user] });
      return true;
    },

    remove(id) {
      const users = readUsers();
      const kept = users.filter((user) => user.id !== id);
      if (kept.length === users.length) return false;
      write(usersPath, { users: kept });
      return true;
    },

    async status() {
      const pairing = checked(await codes.read());
      if (!pairing) return { state: "none", wrongAttempts: [] };
      return {
        state: stateOf(pairing),
        expiresAt: pairing.expires_at,
        ...(pairing.used_by ? { pairedUser: pairing.used_by } : {}),
        wrongAttempts: pairing.attempts,
      };
    },
  };
  return store;
}

/** The code's hash as stored (the code without its dash, upper case); asynchronous, so a check does not hold the bot up. */
export function hashCode(code: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(code, salt, HASH_BYTES, SCRYPT, (error, key) => (error ? reject(error) : resolve(key))));
}

/** Only the fields we keep: grammy's User carries more (language, premium, …). */
function cleanUser(user: TelegramUser): TelegramUser {
  return {
    id: user.id,
    ...(user.username !== undefined ? { username: user.username } : {}),
    ...(user.first_name !== undefined ? { first_name: user.first_name } : {}),
  };
}
