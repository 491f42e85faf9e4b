import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import postgres from "postgres";
import { nightshift, startDaemonProcess, type DaemonProcess } from "./cli.ts";
import { tempDir } from "./home.ts";
import { startMessagesApi, type MessagesApi } from "./messages-api.ts";
import { freePort } from "./ports.ts";
import { isCi } from "./prerequisites.ts";
import type { TaskRecord } from "../../tasks/state.ts";

/** `.ci/run` starts a throwaway PostgreSQL cluster and exports its URL; elsewhere the Postgres tests skip. */
export const DATABASE_URL = process.env.NIGHTSHIFT_TEST_DATABASE_URL;
export const noDatabase = DATABASE_URL ? undefined : "no PostgreSQL: set NIGHTSHIFT_TEST_DATABASE_URL (`eval \"$(bash .ci/postgres.sh)\"` starts a throwaway cluster)";
if (noDatabase && isCi()) throw new Error(noDatabase);

/** A database of its own on the test cluster, dropped at `drop`. */
export async function freshDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `nightshift_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const admin = postgres(DATABASE_URL!, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(DATABASE_URL!);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end({ timeout: 1 });
    },
  };
}

export interface Machine {
  name: string;
  home: string;
  env: NodeJS.ProcessEnv;
  daemon?: DaemonProcess;
  start(): Promise<DaemonProcess>;
}

/**
 * Machines on one database, each a home of its own and a real `nightshift start`, all against
 * one Messages API stand-in. `config` is added to each home's config.yaml; `env` to each
 * machine's environment. `url`: a database of the test's own (a server it stops and starts);
 * default, a fresh database on the test cluster.
 */
export async function startMachines(names: string[], options: { config?: string; env?: NodeJS.ProcessEnv; url?: string } = {}): Promise<{ api: MessagesApi; db: { url: string }; sql: postgres.Sql; machines: Machine[]; cleanup(): Promise<void> }> {
  const api = await startMessagesApi();
  const db = options.url ? { url: options.url, drop: async () => {} } : await freshDatabase();
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  const dir = tempDir("nightshift-cluster-", "/var/tmp");
  const machines: Machine[] = [];
  for (const name of names) {
    const home = join(dir.path, name);
    mkdirSync(join(home, "inbox"), { recursive: true });
    writeFileSync(join(home, "config.yaml"), `machine: ${name}\ndashboard:\n  port: ${await freePort()}\ndaemon:\n  concurrency: 1\ntasks:\n  stage: "off"\n${options.config ?? ""}`);
    const env = { ...process.env, NIGHTSHIFT_HOME: home, ANTHROPIC_BASE_URL: api.url, ANTHROPIC_API_KEY: "sk-ant-cluster-test", NIGHTSHIFT_DATABASE_URL: db.url, ...options.env };
    const machine: Machine = {
      name,
      home,
      env,
      async start() {
        machine.daemon = await startDaemonProcess(env);
        return machine.daemon;
      },
    };
    machines.push(machine);
  }
  return {
    api,
    db,
    sql,
    machines,
    async cleanup() {
      for (const machine of machines) {
        const child = machine.daemon?.child;
        if (child && child.exitCode === null && child.signalCode === null) {
          child.kill("SIGCONT");
          child.kill("SIGKILL");
          await machine.daemon!.exited;
        }
      }
      await sql.end({ timeout: 1 }).catch(() => {});
      await db.drop();
      await api.close();
      dir.cleanup();
    },
  };
}

/** Which machine each task ran on, by title. */
export async function ranOn(sql: postgres.Sql): Promise<Map<string, string | null>> {
  const rows = await sql<{ title: string; machine: string | null }[]>`SELECT record->>'title' AS title, machine FROM tasks`;
  return new Map(rows.map((row) => [row.title, row.machine]));
}

export function assertDistinct(values: string[], what: string): void {
  assert.equal(new Set(values).size, values.length, `${what}: ${values.join(", ")}`);
}

/**
 * Polls `read` (a query) until `done` holds of its answer, for at most `ms`; returns the last answer.
 * What a machine writes to the store comes after what it writes to its own files.
 */
export async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, ms = 30_000): Promise<T> {
  let value = await read();
  for (const deadline = Date.now() + ms; !done(value) && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    value = await read();
  }
  return value;
}

/**
 * A machine's dashboard, signed in with the link `nightshift dashboard` prints there: `get` a page,
 * or `stream` one (a live page's server-sent events, as they come) with the session's cookie.
 */
export async function signedIn(machine: Pick<Machine, "env" | "home">): Promise<{
  get(path: string): Promise<{ status: number; body: string }>;
  stream(path: string): { received(): string; close(): void };
}> {
  const port = Number(/port: (\d+)/.exec(readFileSync(join(machine.home, "config.yaml"), "utf8"))![1]);
  const host = `127.0.0.1:${port}`;
  const call = (path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
    new Promise<{ status: number; cookie: string; body: string }>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path, method: options.method ?? "GET", headers: { host, ...options.headers } }, (res) => {
        let body = "";
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, cookie: String(res.headers["set-cookie"] ?? "").split(";")[0]!, body }));
      });
      req.on("error", reject);
      req.end(options.body);
    });
  const printed = await nightshift(["dashboard"], machine.env);
  const secret = /\/login#([A-Za-z0-9_-]{43})$/m.exec(printed.stdout)?.[1];
  assert.ok(secret, printed.stdout);
  const login = await call("/login", { method: "POST", headers: { origin: `http://${host}`, "content-type": "application/json" }, body: JSON.stringify({ secret }) });
  assert.equal(login.status, 200, login.body);
  return {
    get: (path) => call(path, { headers: { cookie: login.cookie } }),
    stream(path) {
      let received = "";
      const req = request({ host: "127.0.0.1", port, path, headers: { host, cookie: login.cookie, accept: "text/event-stream" } }, (res) => res.on("data", (chunk) => (received += chunk)));
      req.on("error", () => {});
      req.end();
      return { received: () => received, close: () => req.destroy() };
    },
  };
}

/** Queued task records for the store's tests, numbered `task-1`, `task-2`, … (their `created` too), from `origin`. */
export function taskRecords(origin: TaskRecord["origin"]): (title: string, fields?: Partial<TaskRecord>) => TaskRecord {
  let n = 0;
  return (title, fields = {}) => ({
    id: `task-${++n}`,
    title,
    origin,
    priority: "normal",
    state: "queued",
    spec: { title, prompt: title, workdir: "/tmp", model: "main", budget: { max_turns: 1, max_usd: 1, timeout_ms: 1000 } },
    created: n,
    attempts: 0,
    crashes: 0,
    turns: 0,
    cost_usd: 0,
    ...fields,
  });
}
