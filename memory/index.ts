export { DEFAULT_IDENTITY, DEFAULT_MEMORY, readPrefix } from "./identity.ts";
export { openMemory, type Memory } from "./access.ts";
export { journalDamageMessage, openJournal, type DamagedLine, type Journal, type JournalEntry } from "./journal.ts";
export { formatMemory, openMemoryStore, parseMemory, type MemoryEntry, type MemoryStore, type ParsedMemory } from "./memory-file.ts";
export { openMemoryRuns, type ConsolidationRun, type MemoryRuns } from "./runs.ts";
