import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { html } from "hono/html";
import type { Journal, JournalEntry, MemoryStore } from "../memory/index.ts";
import { size } from "./format.ts";
import { journalHref } from "./journal-page.ts";
import { splitCitation } from "../memory/machine-journal.ts";
import { lineDiff, type DiffLine } from "../runtime/line-diff.ts";

/**
 * The Memory page: MEMORY.md's entries as the memory service reads them, each with the journal
 * entries it rests on (who wrote them, trusted or not, each linked to its place in the journal's
 * page of its day), the file's size against `memory.cap`, its versions in memory-history/ each with
 * a line diff to the version after it, and Undo (the same undo as Telegram's `/memory undo`). Every
 * text goes through `html`'s escaping.
 */

export interface MemorySources {
  store: Pick<MemoryStore, "path" | "read" | "history">;
  /** Where an entry's sources are looked up (by journal id), and a day of it shown (the journal page). */
  journal: Pick<Journal, "all" | "day">;
  /** `memory.cap` in bytes. */
  capBytes: number;
  /** The memory service's undo (what `/memory undo` runs); returns the text the bot would send. */
  undo(): string;
  /** Several machines: the other machines' journals, in the shared store (this machine's stays `journal`). */
  elsewhere?: JournalsElsewhere;
}

export interface JournalsElsewhere {
  /** This machine's name: its own entries are read from `journal`. */
  machine: string;
  /** The entries named (machine-qualified ids), those the store holds. */
  find(ids: string[]): Promise<JournalEntry[]>;
  /** One day of another machine's journal; undefined when it has none that day. */
  day(machine: string, day: string): Promise<JournalEntry[] | undefined>;
}

/** Versions shown, newest first; older ones stay in memory-history/. */
export const HISTORY_SHOWN = 20;
/** A version file larger than this is listed without a diff. */
export const MAX_DIFF_BYTES = 256 * 1024;

interface Version {
  name: string;
  /** From this version to the one after it (the next newer one, or MEMORY.md for the newest); undefined when too large. */
  diff: DiffLine[] | undefined;
}

export interface MemoryView {
  entries: Array<{ id: string; text: string; added: string; updated?: string; sources: Array<{ id: string; entry?: JournalEntry }> }>;
  other: string;
  bytes: number;
  capBytes: number;
  versions: Version[];
  /** Versions in memory-history/ beyond those shown. */
  olderVersions: number;
}

export async function readMemory(sources: MemorySources): Promise<MemoryView> {
  const file = sources.store.read();
  const cited = new Set(file.entries.flatMap((entry) => entry.sources));
  const journal = new Map<string, JournalEntry>();
  if (cited.size > 0) for (const entry of sources.journal.all()) if (cited.has(entry.id)) journal.set(entry.id, entry);
  // Another machine's entries from the store; while it is away they are named with their machine, as before.
  const { elsewhere } = sources;
  const theirs = elsewhere ? [...cited].filter((id) => !journal.has(id) && (splitCitation(id).machine ?? elsewhere.machine) !== elsewhere.machine) : [];
  if (theirs.length > 0) for (const entry of await elsewhere!.find(theirs).catch(() => [])) journal.set(entry.id, entry);
  const history = sources.store.history();
  const shown = history.slice(0, HISTORY_SHOWN);
  // The text each shown version changed into: MEMORY.md for the newest, else the next newer version.
  let after = readCapped(sources.store.path) ?? (file.bytes === 0 ? "" : undefined);
  const versions: Version[] = [];
  for (const path of shown) {
    const before = readCapped(path);
    versions.push({ name: basename(path), diff: before === undefined || after === undefined ? undefined : lineDiff(before, after) });
    after = before;
  }
  return {
    entries: file.entries.map((entry) => ({ ...entry, sources: entry.sources.map((id) => ({ id, ...(journal.has(id) ? { entry: journal.get(id)! } : {}) })) })),
    other: file.other.replace(/^# Memory\s*$/m, "").trim(),
    bytes: file.bytes,
    capBytes: sources.capBytes,
    versions,
    olderVersions: history.length - shown.length,
  };
}

/** A file's text, or undefined when it is missing, unreadable or over MAX_DIFF_BYTES. */
function readCapped(path: string): string | undefined {
  try {
    const text = readFileSync(path, "utf8");
    return Buffer.byteLength(text) > MAX_DIFF_BYTES ? undefined : text;
  } catch {
    return undefined;
  }
}

export function memoryBody(view: MemoryView, csrf: string) {
  const over = view.bytes > view.capBytes;
  return html`<h1>Memory</h1>
<p class="${over ? "warn" : ""}">MEMORY.md: ${view.entries.length} ${view.entries.length === 1 ? "entry" : "entries"}, ${size(view.bytes)} of its ${size(view.capBytes)} cap (memory.cap)${over ? " — over the cap: sessions see only the newest and most cited entries" : ""}</p>
<form method="post" action="/memory/undo"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit">Undo the last change</button></form>
<section aria-labelledby="entries"><h2 id="entries">Entries</h2>
${view.entries.length === 0 ? html`<p class="quiet">Nothing is remembered yet.</p>` : html`<ul class="cards">${view.entries.map((entry) => html`<li class="card"><p class="text">${entry.text}</p>
<p class="quiet"><code>${entry.id}</code> · added ${entry.added}${entry.updated ? ` · updated ${entry.updated}` : ""}</p>
${entry.sources.length === 0 ? html`<p class="quiet">No sources.</p>` : html`<ul class="sources">${entry.sources.map(sourceItem)}</ul>`}</li>`)}</ul>`}
${view.other ? html`<h3>Notes kept as written</h3><pre>${view.other}</pre>` : ""}
</section>
<section aria-labelledby="history"><h2 id="history">History (${view.versions.length + view.olderVersions})</h2>
${view.versions.length === 0 ? html`<p class="quiet">No earlier version yet.</p>` : view.versions.map(versionBlock)}
${view.olderVersions > 0 ? html`<p class="quiet">${view.olderVersions} older versions are in memory-history/.</p>` : ""}
</section>`;
}

function sourceItem(source: { id: string; entry?: JournalEntry }) {
  const entry = source.entry;
  const elsewhere = splitCitation(source.id).machine;
  if (!entry) return html`<li><code>${source.id}</code> <span class="quiet">(${elsewhere ? `in ${elsewhere}'s journal` : "not in the journal"})</span></li>`;
  return html`<li><details><summary><a href="${journalHref(entry.id)}"><code>${source.id}</code></a>&nbsp;<span class="chip ${entry.trusted ? "trusted" : "untrusted"}">${entry.trusted ? "trusted" : "untrusted"}</span>&nbsp;${entry.kind} by ${entry.source}</summary><pre>${entry.text}</pre></details></li>`;
}

const MARK = { same: " ", add: "+", remove: "-" } as const;

function versionBlock(version: Version) {
  const changed = version.diff?.filter((line) => line.op !== "same").length ?? 0;
  return html`<details class="version"><summary>${version.name}${version.diff ? ` · ${changed} changed ${changed === 1 ? "line" : "lines"} after it` : " · too large to compare"}</summary>
${version.diff ? html`<pre class="diff">${version.diff.filter((line) => line.op !== "same").map((line) => html`<span class="${line.op}">${MARK[line.op]} ${line.text}</span>`)}</pre>` : ""}</details>`;
}
