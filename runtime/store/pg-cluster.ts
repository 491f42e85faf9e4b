/**
 * Several machines on one PostgreSQL (issue 16): the shared task queue and history, each machine's
 * heartbeat, cancels across machines, and leases for work only one machine may do at a time.
 *
 * Each machine keeps its own home (config, session logs, its state file). A task is queued here;
 * a machine with a free slot claims one (`FOR UPDATE SKIP LOCKED`, so two never take the same),
 * copies it into its own state and runs it there, publishing each change back, so every machine
 * sees every task. A task pinned to a machine (its workdir is a folder there) is claimed only by
 * that machine. A started task stays on its machine: it resumes from its log there, and waits for
 * that machine when it sleeps or dies. A task claimed by a machine that went silent before
 * starting it goes back to the queue. Times that decide who is alive are the database's, so the
 * machines' clocks need not agree.
 */

import { hostname } from "node:os";
import type { SessionResult } from "../loop.ts";
import type { TaskRecord } from "../../tasks/state.ts";
import type postgres from "postgres";
import { connectPg, type Sql } from "./pg.ts";
import { sharedFiles, type SharedFiles } from "./pg-files.ts";

/** A machine that has not beaten for this long is taken for asleep or dead. */
export const MACHINE_SILENT_MS = 30_000;
/** How often a machine beats, and polls the queue should a notification be missed. */
export const HEARTBEAT_MS = 5_000;
/** Who delivers the result of a Telegram task: whichever machine holds the Telegram lease. */
export const TELEGRAM = "@telegram";
/** The lease of the machine that polls Telegram. */
export const TELEGRAM_LEASE = "telegram";
/** The channel that wakes machines: a task queued, a cancel asked, a result to deliver. A hint only: they poll anyway. */
export const CHANNEL = "nightshift_tasks";
const PRIORITY = { high: 0, normal: 1, low: 2 } as const;

export interface MachineStatus {
  name: string;
  /** Milliseconds since its last heartbeat, by the database's clock. */
  silentMs: number;
  /** When it last beat, by the database's clock (ms): one silence of it, for saying it once. */
  heartbeat: number;
  alive: boolean;
  stopped: boolean;
  running: number;
  concurrency: number;
  pid: number;
}

export interface ScheduleCursor {
  name: string;
  at: number;
}

export interface SharedTask {
  record: TaskRecord;
  /** The machine that claimed it, if any. */
  machine?: string;
  /** The machine it must run on, if any. */
  pin?: string;
}

export interface Cluster {
  readonly machine: string;
  /** Identity, memory, specialists and skills, held alike by every machine (tasks/shared-files.ts). */
  readonly files: SharedFiles;
  /** The pool, for this machine's other shared stores (runtime/store/pg-telegram.ts). */
  readonly sql: Sql;
  /**
   * At start: takes this machine's name. Refused (with who holds it) while another live process
   * uses it: on another host, or on this one under a process that still runs. Two processes under
   * one name would take each other's tasks for their own and run them twice.
   */
  join(concurrency: number): Promise<{ ok: true } | { ok: false; host: string; pid: number; silentMs: number }>;
  /** Says this machine is alive (at start and every HEARTBEAT_MS) with how much it runs. */
  beat(running: number, concurrency: number): Promise<void>;
  /** Says this machine stopped on purpose (not asleep): its tasks show as waiting for it. */
  leave(): Promise<void>;
  machines(): Promise<MachineStatus[]>;
  /**
   * Queues a new task (its `deliver_to` set), pinned to `pin` if given; wakes the machines. Throws
   * if the id is taken by another task. Safe to repeat: a try whose answer was lost with the
   * connection may have queued it, and the same record queued again is the same task. With
   * `cursor` (a schedule's slot), the schedule's shared cursor moves to it in the same
   * transaction, and nothing is queued (false) when some machine queued that slot or a later one
   * already: every slot is queued once across the machines.
   */
  enqueue(record: TaskRecord, pin?: string, cursor?: ScheduleCursor): Promise<boolean>;
  /**
   * `nightshift store migrate`: this machine's own tasks (its state file's), written as this
   * machine's, active ones pinned here, and schedule cursors (only ever moved forward); all in one
   * transaction. A task already there as this machine's is brought up to date; one another machine
   * holds is left alone ("foreign").
   */
  adopt(records: TaskRecord[], cursors: ScheduleCursor[]): Promise<{ added: number; updated: number; same: number; foreign: string[]; cursors: number }>;
  /** Takes the next queued task this machine may run, or nothing. */
  claim(): Promise<TaskRecord | undefined>;
  /**
   * Tasks this machine claimed and has not started, by the store. One is missing from this
   * machine's state only when the claim's answer was lost (the connection dropped, the process
   * died right after): the machine takes it up again instead of leaving it claimed forever.
   */
  claimedHere(): Promise<TaskRecord[]>;
  /** Tasks the store has as this machine's and not ended (queued, running, waiting). */
  activeHere(): Promise<TaskRecord[]>;
  /**
   * Writes that this machine starts a task it claimed (`record` as it starts), before anything of
   * it runs: from then on it is pinned here and never given to another machine. False when the
   * task is no longer this machine's (it was silent so long that another took it): it must not
   * run here. True too for a task the store does not hold (one this machine made for itself).
   */
  start(record: TaskRecord): Promise<boolean>;
  /** Of these inbox file names (inbox/.done/), those of tasks queued from this machine. */
  queuedNames(names: string[]): Promise<string[]>;
  /**
   * Writes a change this machine made to one of its tasks (only while it is this machine's); with
   * its result once it ended, and whether the person has it already (delivered here).
   */
  publish(record: TaskRecord, end?: { result: SessionResult; delivered: boolean }): Promise<void>;
  /** Ended tasks whose result is this machine's to deliver (and Telegram's, with `telegram`), not delivered yet. */
  undelivered(options: { telegram: boolean }): Promise<Array<{ record: TaskRecord; result: SessionResult }>>;
  /** Marks it delivered; false when it was already (another machine, or an earlier try, did). */
  delivered(id: string): Promise<boolean>;
  /** Queued tasks claimed by a machine silent for MACHINE_SILENT_MS and never started go back to the queue, unless pinned. Returns how many. */
  releaseSilent(): Promise<number>;
  /** Cancels a task wherever it is: at once while nobody has claimed it, else by asking its machine. */
  cancel(id: string, reason: string): Promise<"cancelled" | "asked" | "finished" | "unknown">;
  /** Cancels asked of this machine's tasks; each is returned until `cancelled` is called for it. */
  cancelsForMe(): Promise<Array<{ id: string; reason: string }>>;
  cancelHandled(id: string): Promise<void>;
  get(id: string): Promise<SharedTask | undefined>;
  /** Every machine's queued, running and waiting tasks, oldest first. */
  active(): Promise<SharedTask[]>;
  /** The newest `limit` tasks of every machine. */
  recent(limit: number): Promise<SharedTask[]>;
  /** Every machine's tasks that finished (done, failed, cancelled) at or after `at`, newest first (the digest). */
  finishedSince(at: number): Promise<SharedTask[]>;
  /** A task of any machine by its id, or the tasks whose id starts or ends with `part` (at most `limit`), newest first. */
  match(part: string, limit: number): Promise<SharedTask[]>;
  /** Every machine's tasks as the Tasks page filters them (`TaskReader.list`): newest first, at most `limit`. */
  list(filter: { state?: string | undefined; origin?: string | undefined; before?: { created: number; id: string } | undefined }, limit: number): Promise<SharedTask[]>;
  /** Calls `wake` on each notification (a task queued, a cancel asked). Returns a function that stops listening. */
  listen(wake: () => void): Promise<() => Promise<void>>;
  /**
   * Takes or renews the lease `name` for `ttlMs`: true while this machine holds it. Another
   * machine takes it only once it expired, by the database's clock.
   */
  lease(name: string, ttlMs: number): Promise<boolean>;
  releaseLease(name: string): Promise<void>;
  close(): Promise<void>;
}

interface TaskRow {
  record: TaskRecord;
  machine: string | null;
  pin: string | null;
}

/** Whether a process of this host runs under `pid` (a daemon killed with SIGKILL left its row fresh for up to MACHINE_SILENT_MS). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

const shared = (row: TaskRow): SharedTask => ({ record: row.record, ...(row.machine ? { machine: row.machine } : {}), ...(row.pin ? { pin: row.pin } : {}) });

/**
 * `silentMs`: MACHINE_SILENT_MS unless given. Only tests give it (NIGHTSHIFT_TEST_MACHINE_SILENT_MS,
 * read by cli/start.ts), so a test of a dead machine's tasks does not wait 30 s.
 */
export async function openCluster(url: string, machine: string, options: { silentMs?: number } = {}): Promise<Cluster> {
  return cluster(await connectPg(url), machine, { owned: true, ...options });
}

export function cluster(sql: Sql, machine: string, options: { owned?: boolean; silentMs?: number } = {}): Cluster {
  const json = (record: TaskRecord) => sql.json(record as never);
  const silentMs = options.silentMs ?? MACHINE_SILENT_MS;
  return {
    machine,
    files: sharedFiles(sql, machine),
    sql,
    async join(concurrency) {
      return sql.begin(async (tx) => {
        const [row] = await tx<{ host: string | null; pid: number; stopped: boolean; silent_ms: number }[]>`
          SELECT host, pid, stopped, (extract(epoch FROM now() - heartbeat) * 1000)::float8 AS silent_ms FROM machines WHERE name = ${machine} FOR UPDATE`;
        const here = hostname();
        const live = row && !row.stopped && row.silent_ms < silentMs && !(row.host === here && row.pid === process.pid) && (row.host !== here || processRuns(row.pid));
        if (live) return { ok: false as const, host: row.host ?? "an older Nightshift", pid: row.pid, silentMs: row.silent_ms };
        await tx`
          INSERT INTO machines (name, pid, host, concurrency, running) VALUES (${machine}, ${process.pid}, ${here}, ${concurrency}, 0)
          ON CONFLICT (name) DO UPDATE SET heartbeat = now(), started = now(), pid = EXCLUDED.pid, host = EXCLUDED.host, concurrency = EXCLUDED.concurrency, running = 0, stopped = false`;
        return { ok: true as const };
      });
    },
    async beat(running, concurrency) {
      await sql`
        INSERT INTO machines (name, pid, host, concurrency, running) VALUES (${machine}, ${process.pid}, ${hostname()}, ${concurrency}, ${running})
        ON CONFLICT (name) DO UPDATE SET heartbeat = now(), pid = EXCLUDED.pid, host = EXCLUDED.host, concurrency = EXCLUDED.concurrency, running = EXCLUDED.running, stopped = false,
          started = CASE WHEN machines.pid = EXCLUDED.pid AND NOT machines.stopped THEN machines.started ELSE now() END`;
    },
    async leave() {
      await sql`UPDATE machines SET stopped = true, running = 0 WHERE name = ${machine}`;
    },
    async machines() {
      const rows = await sql<{ name: string; silent_ms: number; beat: number; stopped: boolean; running: number; concurrency: number; pid: number }[]>`
        SELECT name, (extract(epoch FROM now() - heartbeat) * 1000)::float8 AS silent_ms, (extract(epoch FROM heartbeat) * 1000)::float8 AS beat, stopped, running, concurrency, pid FROM machines ORDER BY name`;
      return rows.map((row) => ({ name: row.name, silentMs: row.silent_ms, heartbeat: Math.round(row.beat), alive: !row.stopped && row.silent_ms < silentMs, stopped: row.stopped, running: row.running, concurrency: row.concurrency, pid: row.pid }));
    },
    async enqueue(record, pin, cursor) {
      /** Queued already by an earlier try whose answer was lost (its cursor moved with it): the same task, nothing to do. */
      const sameTask = async (tx: postgres.TransactionSql): Promise<boolean | undefined> => {
        const [queued] = await tx<{ created: string; deliver_to: string }[]>`SELECT created, deliver_to FROM tasks WHERE id = ${record.id}`;
        if (!queued) return undefined;
        if (Number(queued.created) === record.created && queued.deliver_to === (record.deliver_to ?? machine)) return true;
        throw new Error(`task id ${record.id} is already taken`);
      };
      return sql.begin(async (tx) => {
        const queued = await sameTask(tx);
        if (queued !== undefined) return queued;
        if (cursor) {
          // The row is locked until commit: a second machine queuing the same slot waits here, then finds it taken.
          const moved = await tx`
            INSERT INTO schedule_cursors (name, last_run) VALUES (${cursor.name}, ${cursor.at})
            ON CONFLICT (name) DO UPDATE SET last_run = EXCLUDED.last_run WHERE schedule_cursors.last_run < EXCLUDED.last_run
            RETURNING 1`;
          if (moved.length === 0) return false;
        }
        // An earlier try still in flight may commit the same row first: this one then waits for it and finds it there.
        const inserted = await tx`INSERT INTO tasks (id, state, priority, created, pin, deliver_to, record) VALUES (${record.id}, ${record.state}, ${PRIORITY[record.priority]}, ${record.created}, ${pin ?? null}, ${record.deliver_to ?? machine}, ${json(record)}) ON CONFLICT (id) DO NOTHING RETURNING 1`;
        if (inserted.length === 0) return (await sameTask(tx)) ?? false;
        await tx`SELECT pg_notify(${CHANNEL}, 'queued')`;
        return true;
      });
    },
    async adopt(records, cursors) {
      return sql.begin(async (tx) => {
        const counts = { added: 0, updated: 0, same: 0, foreign: [] as string[], cursors: 0 };
        for (const record of records) {
          const active = ["queued", "running", "waiting_approval"].includes(record.state);
          const [row] = await tx<{ machine: string | null; same: boolean }[]>`SELECT machine, record = ${json(record)} AS same FROM tasks WHERE id = ${record.id} FOR UPDATE`;
          if (row && row.machine !== machine) counts.foreign.push(record.id);
          else if (row?.same) counts.same++;
          else if (row) {
            await tx`UPDATE tasks SET state = ${record.state}, priority = ${PRIORITY[record.priority]}, finished = ${record.finished ?? null}, pin = ${active ? machine : null}, record = ${json(record)} WHERE id = ${record.id}`;
            counts.updated++;
          } else {
            // Finished ones were delivered here already; active ones run here, where their session logs are.
            await tx`
              INSERT INTO tasks (id, state, priority, created, finished, pin, machine, deliver_to, record, delivered)
              VALUES (${record.id}, ${record.state}, ${PRIORITY[record.priority]}, ${record.created}, ${record.finished ?? null}, ${active ? machine : null}, ${machine}, ${record.deliver_to ?? machine}, ${json(record)}, ${!active})`;
            counts.added++;
          }
        }
        for (const cursor of cursors) {
          const moved = await tx`
            INSERT INTO schedule_cursors (name, last_run) VALUES (${cursor.name}, ${cursor.at})
            ON CONFLICT (name) DO UPDATE SET last_run = EXCLUDED.last_run WHERE schedule_cursors.last_run < EXCLUDED.last_run
            RETURNING 1`;
          counts.cursors += moved.length;
        }
        return counts;
      });
    },
    async claim() {
      const [row] = await sql<{ record: TaskRecord }[]>`
        UPDATE tasks SET machine = ${machine}
        WHERE id = (
          SELECT id FROM tasks
          WHERE state = 'queued' AND machine IS NULL AND cancel IS NULL AND (pin IS NULL OR pin = ${machine})
          ORDER BY priority, created
          LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING record`;
      return row?.record;
    },
    async activeHere() {
      const rows = await sql<{ record: TaskRecord }[]>`SELECT record FROM tasks WHERE machine = ${machine} AND state IN ('queued', 'running', 'waiting_approval')`;
      return rows.map((row) => row.record);
    },
    async claimedHere() {
      const rows = await sql<{ record: TaskRecord }[]>`SELECT record FROM tasks WHERE machine = ${machine} AND state = 'queued' AND (record->>'attempts')::int = 0 ORDER BY priority, created`;
      return rows.map((row) => row.record);
    },
    async start(record) {
      const [row] = await sql<{ mine: boolean }[]>`
        WITH started AS (
          UPDATE tasks SET state = ${record.state}, record = ${json(record)} WHERE id = ${record.id} AND machine = ${machine} AND state = 'queued' RETURNING 1)
        SELECT EXISTS (SELECT 1 FROM started) OR NOT EXISTS (SELECT 1 FROM tasks WHERE id = ${record.id}) AS mine`;
      return row!.mine;
    },
    async queuedNames(names) {
      if (names.length === 0) return [];
      const rows = await sql<{ name: string }[]>`SELECT record->>'name' AS name FROM tasks WHERE deliver_to = ${machine} AND record->>'origin' = 'inbox' AND record->>'name' IN ${sql(names)}`;
      return rows.map((row) => row.name);
    },
    async publish(record, end) {
      await sql.begin(async (tx) => {
        await tx`
          UPDATE tasks SET state = ${record.state}, priority = ${PRIORITY[record.priority]}, finished = ${record.finished ?? null}, record = ${json(record)}
          WHERE id = ${record.id} AND machine = ${machine} AND (record->>'attempts')::int <= ${record.attempts}`;
        if (!end) return;
        await tx`UPDATE tasks SET result = ${tx.json(end.result as never)}, delivered = ${end.delivered} WHERE id = ${record.id} AND machine = ${machine}`;
        if (!end.delivered) await tx`SELECT pg_notify(${CHANNEL}, 'ended')`;
      });
    },
    async undelivered({ telegram }) {
      const to = telegram ? [machine, TELEGRAM] : [machine];
      const rows = await sql<Array<{ record: TaskRecord; result: SessionResult }>>`
        SELECT record, result FROM tasks WHERE result IS NOT NULL AND NOT delivered AND deliver_to IN ${sql(to)} ORDER BY finished`;
      return rows.map((row) => ({ record: row.record, result: row.result }));
    },
    async delivered(id) {
      const rows = await sql`UPDATE tasks SET delivered = true WHERE id = ${id} AND NOT delivered RETURNING 1`;
      return rows.length === 1;
    },
    async releaseSilent() {
      return sql.begin(async (tx) => {
        const silent = () => tx`SELECT name FROM machines WHERE stopped OR heartbeat < now() - make_interval(secs => ${silentMs / 1000})`;
        // Cancelled while its machine slept before starting it: it ends cancelled here, never goes to another machine.
        const asked = await tx<{ id: string; record: TaskRecord; cancel: string }[]>`
          SELECT id, record, cancel FROM tasks
          WHERE state = 'queued' AND cancel IS NOT NULL AND machine IS NOT NULL AND machine <> ${machine} AND (record->>'attempts')::int = 0 AND machine IN (${silent()})
          FOR UPDATE SKIP LOCKED`;
        for (const row of asked) {
          const finished = Date.now();
          const result: SessionResult = { status: "cancelled", answer: "", reason: row.cancel, turns: 0, costUsd: 0 };
          await tx`UPDATE tasks SET state = 'cancelled', finished = ${finished}, cancel = NULL, record = ${json({ ...row.record, state: "cancelled", finished, reason: row.cancel })}, result = ${tx.json(result as never)}, delivered = false WHERE id = ${row.id}`;
        }
        const released = await tx`
          UPDATE tasks SET machine = NULL
          WHERE state = 'queued' AND pin IS NULL AND cancel IS NULL AND machine IS NOT NULL AND machine <> ${machine}
            AND (record->>'attempts')::int = 0
            AND machine IN (${silent()})
          RETURNING id`;
        return released.length;
      });
    },
    async cancel(id, reason) {
      return sql.begin(async (tx) => {
        const [row] = await tx<{ state: string; machine: string | null; record: TaskRecord }[]>`SELECT state, machine, record FROM tasks WHERE id = ${id} FOR UPDATE`;
        if (!row) return "unknown" as const;
        if (!["queued", "running", "waiting_approval"].includes(row.state)) return "finished" as const;
        if (!row.machine) {
          // Its cancelled result goes to the machine it came to, as any result does (an inbox file's result file).
          const record: TaskRecord = { ...row.record, state: "cancelled", finished: Date.now(), reason };
          const result: SessionResult = { status: "cancelled", answer: "", reason, turns: 0, costUsd: 0 };
          await tx`UPDATE tasks SET state = 'cancelled', finished = ${record.finished!}, record = ${json(record)}, result = ${tx.json(result as never)}, delivered = false WHERE id = ${id}`;
          await tx`SELECT pg_notify(${CHANNEL}, 'ended')`;
          return "cancelled" as const;
        }
        await tx`UPDATE tasks SET cancel = ${reason} WHERE id = ${id}`;
        await tx`SELECT pg_notify(${CHANNEL}, 'cancel')`;
        return "asked" as const;
      });
    },
    async cancelsForMe() {
      const rows = await sql<{ id: string; reason: string }[]>`SELECT id, cancel AS reason FROM tasks WHERE machine = ${machine} AND cancel IS NOT NULL`;
      return rows.map((row) => ({ id: row.id, reason: row.reason }));
    },
    async cancelHandled(id) {
      await sql`UPDATE tasks SET cancel = NULL WHERE id = ${id} AND machine = ${machine}`;
    },
    async get(id) {
      const [row] = await sql<TaskRow[]>`SELECT record, machine, pin FROM tasks WHERE id = ${id}`;
      return row ? shared(row) : undefined;
    },
    async active() {
      const rows = await sql<TaskRow[]>`SELECT record, machine, pin FROM tasks WHERE state IN ('queued', 'running', 'waiting_approval') ORDER BY created`;
      return rows.map(shared);
    },
    async recent(limit) {
      const rows = await sql<TaskRow[]>`SELECT record, machine, pin FROM tasks ORDER BY created DESC LIMIT ${limit}`;
      return rows.map(shared);
    },
    async finishedSince(at) {
      const rows = await sql<TaskRow[]>`SELECT record, machine, pin FROM tasks WHERE finished >= ${at} AND state IN ('done', 'failed', 'cancelled') ORDER BY finished DESC`;
      return rows.map(shared);
    },
    async match(part, limit) {
      const exact = await sql<TaskRow[]>`SELECT record, machine, pin FROM tasks WHERE id = ${part}`;
      if (exact.length) return exact.map(shared);
      const pattern = part.replace(/[\\%_]/g, (char) => `\\${char}`);
      const rows = await sql<TaskRow[]>`SELECT record, machine, pin FROM tasks WHERE id LIKE ${`${pattern}%`} OR id LIKE ${`%${pattern}`} ORDER BY created DESC LIMIT ${limit}`;
      return rows.map(shared);
    },
    async list(filter, limit) {
      const { state, origin, before } = filter;
      const rows = await sql<TaskRow[]>`
        SELECT record, machine, pin FROM tasks WHERE true
          ${state === undefined ? sql`` : sql`AND state = ${state}`}
          ${origin === undefined ? sql`` : sql`AND record->>'origin' = ${origin}`}
          ${before ? sql`AND (created < ${before.created} OR (created = ${before.created} AND id < ${before.id}))` : sql``}
        ORDER BY created DESC, id DESC LIMIT ${limit}`;
      return rows.map(shared);
    },
    async listen(wake) {
      const { unlisten } = await sql.listen(CHANNEL, () => wake());
      return unlisten;
    },
    async lease(name, ttlMs) {
      const rows = await sql`
        INSERT INTO leases (name, holder, epoch, expires) VALUES (${name}, ${machine}, 1, now() + make_interval(secs => ${ttlMs / 1000}))
        ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires = EXCLUDED.expires,
          epoch = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.epoch ELSE leases.epoch + 1 END
          WHERE leases.holder = EXCLUDED.holder OR leases.expires < now()
        RETURNING 1`;
      return rows.length === 1;
    },
    async releaseLease(name) {
      await sql`UPDATE leases SET expires = now() - interval '1 second' WHERE name = ${name} AND holder = ${machine}`;
    },
    async close() {
      if (options.owned) await sql.end({ timeout: 5 });
    },
  };
}
