/**
 * Files every machine on the shared store must hold alike (IDENTITY.md, MEMORY.md, agents/,
 * skills/; see tasks/shared-files.ts), kept in PostgreSQL as whole contents with a version. A
 * machine compares the versions (a few hundred rows at most, no contents) with those it holds and
 * reads only what changed: no reliance on versions committing in order. A write names the version
 * it was based on and fails if another machine wrote the file since (compare and set): nothing is
 * overwritten unseen.
 */

import type { Sql } from "./pg.ts";

const CHANNEL = "nightshift_files";

export interface SharedFile {
  path: string;
  /** Undefined: removed. */
  content?: Buffer;
  version: number;
  machine: string;
}

export interface SharedFiles {
  /** Every path's version (removed files too: their content is gone, their version stays). */
  versions(): Promise<Map<string, number>>;
  read(paths: readonly string[]): Promise<SharedFile[]>;
  /**
   * Writes `path` (undefined: removes it) if its version is still `base` (0: it does not exist
   * yet). Returns the new version, or undefined when another machine wrote it first.
   */
  put(path: string, content: Buffer | undefined, base: number): Promise<number | undefined>;
  /** Calls `changed` when another machine writes a file. */
  listen(changed: () => void): Promise<() => Promise<void>>;
}

export function sharedFiles(sql: Sql, machine: string): SharedFiles {
  return {
    async versions() {
      const rows = await sql<{ path: string; version: string }[]>`SELECT path, version FROM shared_files`;
      return new Map(rows.map((row) => [row.path, Number(row.version)]));
    },
    async read(paths) {
      if (paths.length === 0) return [];
      const rows = await sql<{ path: string; content: Buffer | null; version: string; machine: string }[]>`
        SELECT path, content, version, machine FROM shared_files WHERE path IN ${sql(paths as string[])}`;
      return rows.map((row) => ({ path: row.path, ...(row.content ? { content: row.content } : {}), version: Number(row.version), machine: row.machine }));
    },
    async put(path, content, base) {
      return sql.begin(async (tx) => {
        const rows =
          base === 0
            ? await tx<{ version: string }[]>`
                INSERT INTO shared_files (path, content, version, machine) VALUES (${path}, ${content ?? null}, nextval('shared_files_version'), ${machine})
                ON CONFLICT (path) DO NOTHING
                RETURNING version`
            : await tx<{ version: string }[]>`
                UPDATE shared_files SET content = ${content ?? null}, version = nextval('shared_files_version'), machine = ${machine}, updated = now()
                WHERE path = ${path} AND version = ${base}
                RETURNING version`;
        if (!rows[0]) return undefined;
        await tx`SELECT pg_notify(${CHANNEL}, ${machine})`;
        return Number(rows[0].version);
      });
    },
    async listen(changed) {
      const { unlisten } = await sql.listen(CHANNEL, (from) => {
        if (from !== machine) changed();
      });
      return unlisten;
    },
  };
}
