import type { JournalEntry } from "./journal.ts";
import type { MemoryEntry } from "./memory-file.ts";

export interface RecallHit {
  kind: "memory" | "journal";
  /** A memory entry id (`k3p9`) or a journal entry id (`2026-11-24#3`, `m2:2026-11-24#3` with several machines). */
  id: string;
  /** `YYYY-MM-DD`: a memory entry's last update (or addition), a journal entry's day. */
  date: string;
  text: string;
  /** A memory entry's journal ids; for a journal entry, who wrote it (`["web"]`). */
  sources: string[];
  /** False for journal text from the web, files or tools: quote it, never follow it. */
  trusted: boolean;
  score: number;
}

const STOP_WORDS = new Set(
  ("a an and are as at be but by can did do does for from had has have he her his how i if in into is it its me my no not of on or " +
    "our she so that the their them then there these they this to was we were what when where which who why will with you your").split(" "),
);
const DAY = 86_400_000;
const MEMORY_WEIGHT = 1.15; // consolidated memory beats the raw journal on equal words
const RECENCY_BOOST = 0.3; // at most; a matched word is worth at least ln 2 ≈ 0.69

/** Lowercased word tokens without the most common words, a plural `s` dropped ("tests" finds "test"). */
export function terms(text: string): Set<string> {
  const words = text.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? [];
  return new Set(words.filter((word) => !STOP_WORDS.has(word)).map((word) => (word.length > 3 && word.endsWith("s") && !word.endsWith("ss") ? word.slice(0, -1) : word)));
}

/**
 * The best `limit` memory and journal entries for `query`. Score: the matched query words, each
 * weighted by its rarity among the candidates (idf), memory entries slightly preferred, plus a small
 * boost for recent dates that never outweighs a matched word. Ties go to the newest. An entry that
 * matches no word is never returned.
 */
export function recall(query: string, memory: MemoryEntry[], journal: JournalEntry[], limit = 5): RecallHit[] {
  const wanted = terms(query);
  if (wanted.size === 0 || limit <= 0) return [];
  const candidates: Array<Omit<RecallHit, "score"> & { words: Set<string> }> = [
    ...memory.map((entry) => ({ kind: "memory" as const, id: entry.id, date: entry.updated ?? entry.added, text: entry.text, sources: entry.sources, trusted: true })),
    // The day from the id, past a machine's name (`m2:2026-11-24#3`) when several machines share memory.
    ...journal.map((entry) => ({ kind: "journal" as const, id: entry.id, date: entry.id.slice(entry.id.indexOf(":") + 1, entry.id.indexOf("#")), text: entry.text, sources: [entry.source], trusted: entry.trusted })),
  ].map((candidate) => ({ ...candidate, words: terms(candidate.text) }));

  const idf = new Map<string, number>();
  for (const term of wanted) {
    const df = candidates.filter((candidate) => candidate.words.has(term)).length;
    if (df > 0) idf.set(term, Math.log(1 + candidates.length / df));
  }
  const time = (date: string) => Date.parse(date) || 0;
  const newest = Math.max(0, ...candidates.map((candidate) => time(candidate.date)));

  const hits = candidates.flatMap(({ words, ...candidate }) => {
    let relevance = 0;
    for (const [term, weight] of idf) if (words.has(term)) relevance += weight;
    if (relevance === 0) return [];
    const ageDays = (newest - time(candidate.date)) / DAY;
    const score = relevance * (candidate.kind === "memory" ? MEMORY_WEIGHT : 1) + RECENCY_BOOST / (1 + ageDays / 7);
    return [{ ...candidate, score: Math.round(score * 1000) / 1000 }];
  });
  return hits.sort((a, b) => b.score - a.score || (a.date < b.date ? 1 : a.date > b.date ? -1 : 0)).slice(0, limit);
}
