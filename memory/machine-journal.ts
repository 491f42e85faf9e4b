import type { DamagedLine, Journal, JournalEntry } from "./journal.ts";

/**
 * Several machines share one MEMORY.md, and each keeps its own journal: their ids (`YYYY-MM-DD#line`)
 * repeat from machine to machine. Seen through this, this machine's entries are `machine:YYYY-MM-DD#line`
 * (a machine name has no colon), so what a consolidation here cites names this machine's entry, and
 * an id another machine cited is not mistaken for the entry of the same day and line here. The files
 * stay as they are; an id without a machine (written while the home ran alone) is still taken as this
 * machine's.
 */
export function machineJournal(journal: Journal, machine: string): Journal {
  const prefix = `${machine}:`;
  const cited = <T extends JournalEntry | DamagedLine>(entry: T): T => ({ ...entry, id: `${prefix}${entry.id}` });
  /** The file's id of one of this machine's entries; another machine's id is none of this journal's. */
  const fileId = (id: string | undefined): string | undefined | null => {
    if (id === undefined) return undefined;
    if (id.startsWith(prefix)) return id.slice(prefix.length);
    return id.includes(":") ? null : id;
  };
  return {
    append: (entry) => cited(journal.append(entry)),
    since(afterId) {
      const after = fileId(afterId);
      return (after === null ? journal.since() : journal.since(after)).map(cited);
    },
    all: () => journal.all().map(cited),
    of: (session, fromDay) => journal.of(session, fromDay).map(cited),
    day: (day) => journal.day(day)?.map(cited),
    damaged(afterId) {
      const after = fileId(afterId);
      return (after === null ? journal.damaged() : journal.damaged(after)).map(cited);
    },
  };
}

/** `machine:YYYY-MM-DD#line` → its machine and the id in that machine's files; a bare id has no machine. */
export function splitCitation(id: string): { machine?: string; id: string } {
  const at = id.indexOf(":");
  return at < 0 ? { id } : { machine: id.slice(0, at), id: id.slice(at + 1) };
}
