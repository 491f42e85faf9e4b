import { execFile, execFileSync } from "node:child_process";
import { chownSync, existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { tempDir } from "./home.ts";
import { freePort } from "./ports.ts";
import { isCi } from "./prerequisites.ts";

/**
 * A throwaway PostgreSQL server of a test's own, that the test can stop and start again (the
 * database away for a while). Built as .ci/postgres.sh builds the shared one: initdb and pg_ctl,
 * as the `postgres` user when run as root (PostgreSQL refuses root), fsync off.
 */

const run = promisify(execFile);

/** The newest installed server's bin/ folder (Debian's layout), if any. */
function serverBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((version) => existsSync(join(root, version, "bin", "pg_ctl")));
  versions.sort((a, b) => Number(a) - Number(b));
  return versions.length ? join(root, versions.at(-1)!, "bin") : undefined;
}

const BIN = serverBin();
/** Why the tests that stop a server cannot run here; under CI=true its absence fails the run instead. */
export const noPgServer = BIN ? undefined : "no PostgreSQL server binaries (initdb, pg_ctl under /usr/lib/postgresql/*/bin): sudo apt-get install postgresql";
if (noPgServer && isCi()) throw new Error(noPgServer);

export interface PgServer {
  /** postgres://postgres@127.0.0.1:PORT/postgres (trust, no password). */
  url: string;
  /** Stops it (fast: open connections are closed by the server) and waits until it is down. */
  stop(): Promise<void>;
  /** Starts it again on the same port and waits until it takes connections. */
  start(): Promise<void>;
  /** Stops it if it runs and removes its files. */
  cleanup(): Promise<void>;
}

/** `fsync`: flush commits to disk as a real server does (benchmarks); default off, as .ci/postgres.sh (speed over durability). */
export async function startPgServer(options: { fsync?: boolean } = {}): Promise<PgServer> {
  if (!BIN) throw new Error(noPgServer);
  const root = process.getuid?.() === 0;
  const dir = tempDir("nightshift-pgserver-");
  if (root) chownSync(dir.path, idOf("-u", "postgres"), idOf("-g", "postgres"));
  const data = join(dir.path, "data");
  const port = await freePort();
  const as = (command: string, args: string[]) => (root ? run("runuser", ["-u", "postgres", "--", command, ...args]) : run(command, args));
  await as(join(BIN, "initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  let running = false;
  const server: PgServer = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      await as(join(BIN, "pg_ctl"), ["-D", data, "-l", join(dir.path, "server.log"), "-w", "-o", `-p ${port}${options.fsync ? "" : " -F"} -k ${dir.path} -c listen_addresses=127.0.0.1`, "start"]);
      running = true;
    },
    async stop() {
      await as(join(BIN, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "stop"]);
      running = false;
    },
    async cleanup() {
      if (running) await server.stop().catch(() => {});
      rmSync(dir.path, { recursive: true, force: true });
    },
  };
  try {
    await server.start();
  } catch (error) {
    await server.cleanup();
    throw error;
  }
  return server;
}

/** A user's numeric id (`-u`) or group id (`-g`): Debian's package makes the `postgres` user. */
function idOf(flag: "-u" | "-g", user: string): number {
  return Number(execFileSync("id", [flag, user], { encoding: "utf8" }).trim());
}
