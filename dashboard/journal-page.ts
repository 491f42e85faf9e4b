import { html } from "hono/html";
import type { JournalEntry } from "../memory/index.ts";

/**
 * One day of the journal (journal/YYYY-MM-DD.jsonl), read-only: the page a source on the Memory page
 * links to. Each entry carries an anchor named after its line, so a link to a citation lands on the
 * entry it cites. Every text goes through `html`'s escaping: most of it came from the web, files or
 * tools.
 */

/** Where a journal entry id (`YYYY-MM-DD#line`, with several machines `machine:YYYY-MM-DD#line`) is shown: its day's page, at its line. */
export function journalHref(id: string): string {
  const at = id.indexOf("#");
  const colon = id.indexOf(":");
  // Several machines: the machine's name goes along, so a day of another machine's journal is read from the store.
  const machine = colon < 0 ? "" : `?machine=${encodeURIComponent(id.slice(0, colon))}`;
  return `/memory/journal/${encodeURIComponent(id.slice(colon + 1, at))}${machine}#${anchorOf(id)}`;
}

function anchorOf(id: string): string {
  return `line-${id.slice(id.indexOf("#") + 1)}`;
}

export function journalBody(day: string, entries: JournalEntry[], machine?: string) {
  return html`<h1>Journal · ${day}${machine ? ` · ${machine}` : ""}</h1>
<p class="quiet">${machine ? `${machine}'s ` : ""}journal/${day}.jsonl as written${machine ? " (read from the shared store)" : ""}, ${entries.length} ${entries.length === 1 ? "entry" : "entries"}. <a href="/memory">Back to Memory</a></p>
${entries.length === 0 ? html`<p class="quiet">No readable entry in this day's file.</p>` : html`<ul class="cards">${entries.map(entryItem)}</ul>`}`;
}

function entryItem(entry: JournalEntry) {
  return html`<li class="card" id="${anchorOf(entry.id)}"><p class="quiet"><code>${entry.id}</code>&nbsp;<span class="chip ${entry.trusted ? "trusted" : "untrusted"}">${entry.trusted ? "trusted" : "untrusted"}</span>&nbsp;${entry.kind} by ${entry.source} · ${new Date(entry.at).toTimeString().slice(0, 8)} · task <code>${entry.session}</code>${entry.status ? ` · ${entry.status}` : ""}</p>
<pre>${entry.text}</pre></li>`;
}

/** A day the journal has no file for, or a name that is not a day (`..%2F…` included). */
export function noJournalBody(day: string, machine?: string) {
  if (machine) return html`<h1>No such journal day</h1><p>The shared store holds nothing of ${machine}'s journal for <code>${day}</code>, or cannot be reached now: the day is in journal/ in ${machine}'s home.</p><p><a href="/memory">Back to Memory</a></p>`;
  return html`<h1>No such journal day</h1><p>The journal has no file for <code>${day}</code>: its files are named by day, <code>YYYY-MM-DD</code>, one for each day something was written to it.</p><p><a href="/memory">Back to Memory</a></p>`;
}
