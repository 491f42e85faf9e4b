/**
 * The shared PostgreSQL store of several machines (issue 16): one connection pool per process and
 * the schema, brought up to date by whichever machine starts first. Each step of `MIGRATIONS` runs
 * once, in order, in one transaction under an advisory lock, so machines starting together do not
 * race; a database newer than this Nightshift is refused with what to do.
 */

import postgres from "postgres";

export type Sql = postgres.Sql;

/** Schema steps; the version is the number of steps applied. Never edit one that shipped: add a step. */
const MIGRATIONS: ReadonlyArray<(tx: postgres.TransactionSql) => Promise<unknown>> = [
  // 1: session logs and who owns each session (runtime/store/pg-sessions.ts).
  async (tx) => {
    await tx`CREATE TABLE session_owners (session text PRIMARY KEY, machine text NOT NULL, epoch bigint NOT NULL, heartbeat timestamptz NOT NULL DEFAULT now())`;
    await tx`CREATE TABLE session_events (session text NOT NULL, seq bigint NOT NULL, machine text NOT NULL, event jsonb NOT NULL, PRIMARY KEY (session, seq))`;
  },
  // 2: machines, the shared task queue and history, leases (runtime/store/pg-cluster.ts).
  async (tx) => {
    await tx`CREATE TABLE machines (name text PRIMARY KEY, heartbeat timestamptz NOT NULL DEFAULT now(), started timestamptz NOT NULL DEFAULT now(), pid integer NOT NULL, concurrency integer NOT NULL, running integer NOT NULL DEFAULT 0, stopped boolean NOT NULL DEFAULT false)`;
    await tx`CREATE TABLE tasks (
      id text PRIMARY KEY,
      state text NOT NULL,
      priority smallint NOT NULL,
      created bigint NOT NULL,
      finished bigint,
      pin text,
      machine text,
      deliver_to text NOT NULL,
      cancel text,
      record jsonb NOT NULL,
      result jsonb,
      delivered boolean NOT NULL DEFAULT false)`;
    await tx`CREATE INDEX tasks_queue ON tasks (priority, created) WHERE state = 'queued' AND machine IS NULL`;
    await tx`CREATE INDEX tasks_machine ON tasks (machine) WHERE state IN ('queued', 'running', 'waiting_approval')`;
    await tx`CREATE INDEX tasks_created ON tasks (created DESC)`;
    await tx`CREATE INDEX tasks_undelivered ON tasks (deliver_to) WHERE result IS NOT NULL AND NOT delivered`;
    await tx`CREATE TABLE leases (name text PRIMARY KEY, holder text NOT NULL, epoch bigint NOT NULL, expires timestamptz NOT NULL)`;
  },
  // Files every machine holds alike: identity, memory, specialists, skills (runtime/store/pg-files.ts).
  async (tx) => {
    await tx`CREATE SEQUENCE shared_files_version`;
    await tx`CREATE TABLE shared_files (path text PRIMARY KEY, content bytea, version bigint NOT NULL, machine text NOT NULL, updated timestamptz NOT NULL DEFAULT now())`;
  },
  // Schedule cursors: the newest slot of each schedule (by name) queued by any machine (runtime/store/pg-cluster.ts `enqueue`).
  async (tx) => {
    await tx`CREATE TABLE schedule_cursors (name text PRIMARY KEY, last_run bigint NOT NULL)`;
  },
  // The Telegram bot of whichever machine holds its lease: the next update to take and the bot's
  // state (one row), paired users, and approvals answered from any machine (runtime/store/pg-telegram.ts).
  async (tx) => {
    await tx`CREATE TABLE telegram_bot (id smallint PRIMARY KEY CHECK (id = 1), next_update bigint NOT NULL DEFAULT 0, state jsonb)`;
    await tx`INSERT INTO telegram_bot (id) VALUES (1)`;
    await tx`CREATE TABLE telegram_users (id bigint PRIMARY KEY, "user" jsonb NOT NULL, removed boolean NOT NULL DEFAULT false)`;
    await tx`CREATE SEQUENCE approval_changes`;
    await tx`CREATE TABLE approvals (id text PRIMARY KEY, machine text NOT NULL, record jsonb NOT NULL, answer jsonb, changed bigint NOT NULL DEFAULT nextval('approval_changes'))`;
    await tx`CREATE INDEX approvals_changed ON approvals (changed)`;
  },
  // Which host a machine's process runs on: two live processes under one machine name are refused (runtime/store/pg-cluster.ts `join`).
  async (tx) => {
    await tx`ALTER TABLE machines ADD COLUMN host text`;
  },
  // Notices for Telegram raised on any machine and sent by the one running the bot (runtime/store/pg-notices.ts),
  // a follow-up asked of a finished task's machine from the bot's (runtime/store/pg-follow-ups.ts), and the digest's index.
  async (tx) => {
    await tx`CREATE TABLE telegram_notices (id bigserial PRIMARY KEY, key text UNIQUE, machine text NOT NULL, chat bigint, message jsonb NOT NULL, created timestamptz NOT NULL DEFAULT now(), sent boolean NOT NULL DEFAULT false)`;
    await tx`CREATE INDEX telegram_notices_unsent ON telegram_notices (id) WHERE NOT sent`;
    await tx`ALTER TABLE tasks ADD COLUMN follow_up text`;
    // Every machine's tasks finished since a time (the digest, runtime/store/pg-cluster.ts `finishedSince`).
    await tx`CREATE INDEX tasks_finished ON tasks (finished DESC) WHERE finished IS NOT NULL`;
  },
  // Every machine's memory journal, copied from its files, how far the consolidation has read each, and its runs (runtime/store/pg-journal.ts).
  async (tx) => {
    await tx`CREATE TABLE journal_entries (machine text NOT NULL, day text NOT NULL, line integer NOT NULL, at bigint NOT NULL, entry jsonb NOT NULL, PRIMARY KEY (machine, day, line))`;
    await tx`CREATE INDEX journal_entries_at ON journal_entries (at DESC)`;
    await tx`CREATE TABLE journal_cursors (machine text PRIMARY KEY, day text NOT NULL, line integer NOT NULL)`;
    await tx`CREATE TABLE memory_runs (id bigserial PRIMARY KEY, machine text NOT NULL, run jsonb NOT NULL)`;
  },
  // Apply or Discard pressed on Telegram for a staged task whose copy is on another machine (runtime/store/pg-staged.ts):
  // written on its row, taken by that machine; the index holds only the presses waiting, so the look costs nothing as history grows.
  async (tx) => {
    await tx`ALTER TABLE tasks ADD COLUMN staged_action jsonb`;
    await tx`CREATE INDEX tasks_staged_action ON tasks (machine) WHERE staged_action IS NOT NULL`;
  },
  // A task's specialists' sessions (`<task>.<call>.<name>`), found by their task's prefix (runtime/store/pg-sessions.ts `specialistsOf`).
  async (tx) => {
    await tx`CREATE INDEX session_owners_prefix ON session_owners (session text_pattern_ops)`;
  },
  // Each machine's model spend by local day, and today's by task, for the digest's spend line (runtime/store/pg-spend.ts).
  async (tx) => {
    await tx`CREATE TABLE spend_days (day text NOT NULL, machine text NOT NULL, usd float8 NOT NULL, daily_usd float8, PRIMARY KEY (day, machine))`;
    await tx`CREATE TABLE spend_tasks (day text NOT NULL, machine text NOT NULL, task text NOT NULL, usd float8 NOT NULL, PRIMARY KEY (day, machine, task))`;
  },
  // The latest Telegram pairing code, made by `nightshift pair` on any machine and redeemed by the bot's (runtime/store/pg-pairing.ts).
  async (tx) => {
    await tx`CREATE TABLE telegram_pairing (id smallint PRIMARY KEY CHECK (id = 1), record jsonb NOT NULL)`;
  },
  // MCP tool definitions approved on any machine, read at each machine's check (runtime/store/pg-pins.ts).
  async (tx) => {
    await tx`CREATE TABLE mcp_pins (server text NOT NULL, tool text NOT NULL, hash text NOT NULL, definition jsonb NOT NULL, approved timestamptz NOT NULL, machine text NOT NULL, PRIMARY KEY (server, tool, hash))`;
  },
  // MCP tool reviews found on a machine without the Telegram bot, read back where the bot runs when Approve is pressed
  // (runtime/store/pg-reviews.ts): each machine's latest review of each server, deleted once approved.
  async (tx) => {
    await tx`CREATE TABLE mcp_reviews (server text NOT NULL, machine text NOT NULL, id text NOT NULL, review jsonb NOT NULL, found timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (server, machine))`;
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * `value` as jsonb takes it: PostgreSQL refuses a NUL character (`\u0000`) and a lone surrogate in
 * jsonb, and one such string (a web page's or a binary file's bytes in a journal entry or a tool's
 * output) would fail its whole batch again at every try. Each becomes U+FFFD, as a decoder shows
 * bytes it cannot read; the local file keeps the text as it was.
 */
export function storable<T>(value: T): T {
  if (typeof value === "string") return (value.includes("\0") || !value.isWellFormed() ? value.toWellFormed().replaceAll("\0", "\uFFFD") : value) as T;
  if (Array.isArray(value)) return value.map(storable) as T;
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([key, each]) => [storable(key), storable(each)])) as T;
  return value;
}

/** The database cannot be used as it is; the message says what to do. */
export class StoreRefused extends Error {
  override name = "StoreRefused";
}

/**
 * Connects and brings the schema to `SCHEMA_VERSION`. `migrate: false` (a short command: `nightshift
 * pair`, `nightshift mcp`) changes nothing: a schema other than this Nightshift's is refused with what
 * to do, so a command from a newer build never upgrades the schema under older daemons.
 */
export async function connectPg(url: string, options: { max?: number; migrate?: boolean } = {}): Promise<Sql> {
  // postgres.js spaces a connection's tries after a failure by its own backoff, up to 20 s, so a
  // store that is back could wait that long for its first query: capped at 2 s here (runtime/store/outage.ts).
  const sql = postgres(url, { max: options.max ?? 4, onnotice: () => {}, connect_timeout: 10, backoff: (retries: number) => Math.min(0.1 * 2 ** retries, 2) });
  try {
    await (options.migrate === false ? checkVersion(sql) : migrate(sql));
  } catch (error) {
    await sql.end({ timeout: 1 }).catch(() => {});
    throw error;
  }
  return sql;
}

async function migrate(sql: Sql): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(7420)`; // one machine migrates at a time
    await tx`CREATE TABLE IF NOT EXISTS nightshift_schema (version integer NOT NULL)`;
    const [row] = await tx<{ version: number }[]>`SELECT version FROM nightshift_schema`;
    const version = row?.version ?? 0;
    if (version > SCHEMA_VERSION) {
      throw new StoreRefused(newerThanThis(version));
    }
    for (let step = version; step < SCHEMA_VERSION; step++) await MIGRATIONS[step]!(tx);
    if (!row) await tx`INSERT INTO nightshift_schema (version) VALUES (${SCHEMA_VERSION})`;
    else if (version < SCHEMA_VERSION) await tx`UPDATE nightshift_schema SET version = ${SCHEMA_VERSION}`;
  });
}

/** The schema must be this Nightshift's as it is: only a daemon's start (`migrate`) changes it. */
async function checkVersion(sql: Sql): Promise<void> {
  const version = (await schemaVersion(sql)) ?? 0;
  if (version > SCHEMA_VERSION) throw new StoreRefused(newerThanThis(version));
  if (version === 0) throw new StoreRefused("the shared store holds no Nightshift schema yet: start this machine's daemon (`nightshift start`), which creates it, then run this again");
  if (version < SCHEMA_VERSION) {
    throw new StoreRefused(`the shared store's schema (version ${version}) is older than this Nightshift's (${SCHEMA_VERSION}): start this machine's daemon (\`nightshift start\`), which brings it up to date, then run this again`);
  }
}

const newerThanThis = (version: number) => `the database's Nightshift schema is version ${version}, newer than this Nightshift's ${SCHEMA_VERSION}: update Nightshift on this machine`;

/** The schema version the database is at, without changing it (doctor). */
export async function schemaVersion(sql: Sql): Promise<number | undefined> {
  const [exists] = await sql<{ found: boolean }[]>`SELECT to_regclass('nightshift_schema') IS NOT NULL AS found`;
  if (!exists?.found) return undefined;
  const [row] = await sql<{ version: number }[]>`SELECT version FROM nightshift_schema`;
  return row?.version;
}
