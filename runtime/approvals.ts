import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, watch, writeFileSync, linkSync, type FSWatcher } from "node:fs";
import { join } from "node:path";
import type { Clock } from "./clock.ts";
import type { RuleKind } from "./policy/policy.ts";

/**
 * Durable approvals. Each record is its own file in `state/approvals/`, written once by the process
 * running the session; an answer is a second file, created exclusively, so the first answer wins
 * whoever gives it (the terminal, `nightshift approve`, later Telegram) and a restart loses nothing.
 */

export interface ApprovalRecord {
  id: string;
  session: string;
  /** The tool call waiting for the answer. */
  tool_use_id: string;
  tool: string;
  /** The exact input of the tool call. */
  input: unknown;
  /** One line for a human: what would happen. */
  summary: string;
  kind: RuleKind;
  target: string;
  /** Why it asks: the rule, or "a domain not on the allow list". */
  reason: string;
  /** Who asks, when not the main agent (a specialist's name). */
  label?: string;
  asked_at: number;
  expires_at: number;
}

export type Decision = "once" | "task" | "deny" | "expired";

export interface ApprovalAnswer {
  decision: Decision;
  /** Who answered: "terminal", "cli", "telegram:@name", "expiry". */
  by: string;
  reason?: string;
  at: number;
}

const DECISIONS: readonly string[] = ["once", "task", "deny", "expired"] satisfies Decision[];

/**
 * An answer file as written by `writeAnswer`; anything else counts as no answer. Checked by hand,
 * not with zod: `nightshift approve` and `deny` load this module and must start fast.
 */
function parseAnswer(value: unknown): ApprovalAnswer | undefined {
  const { decision, by, reason, at } = (value ?? {}) as Record<string, unknown>;
  if (typeof decision !== "string" || !DECISIONS.includes(decision) || typeof by !== "string" || typeof at !== "number") return undefined;
  if (reason !== undefined && typeof reason !== "string") return undefined;
  return { decision: decision as Decision, by, at, ...(reason !== undefined ? { reason } : {}) };
}

/** Whoever can tell a human about a pending approval (the terminal now, Telegram later). */
export interface Approver {
  readonly name: string;
  /** Shows the request to a human; their answer arrives through `ApprovalStore.answer`. Must not throw. */
  notify(record: ApprovalRecord): void;
  /** Called once the approval is answered or expired, so the approver can update what it showed. */
  settled?(record: ApprovalRecord, answer: ApprovalAnswer): void;
}

export type AnswerResult =
  | { ok: true; record: ApprovalRecord }
  | { ok: false; problem: "unknown" | "expired" | "answered"; message: string };

export interface ApprovalStore {
  readonly dir: string;
  create(fields: Omit<ApprovalRecord, "id" | "asked_at" | "expires_at">): ApprovalRecord;
  get(id: string): ApprovalRecord | undefined;
  /** The record for this tool call and target, after a restart. */
  find(session: string, toolUseId: string, target: string): ApprovalRecord | undefined;
  answerOf(id: string): ApprovalAnswer | undefined;
  /** Answers once; a second answer, an expired or unknown id get a clear message. */
  answer(id: string, answer: Omit<ApprovalAnswer, "at">): AnswerResult;
  /** Resolves with the answer, or with `expired` (recorded as the answer) at `expires_at`. */
  wait(record: ApprovalRecord, signal?: AbortSignal): Promise<ApprovalAnswer>;
  /** Records without an answer that have not expired. */
  pending(): ApprovalRecord[];
  /** Every record, oldest first. */
  all(): ApprovalRecord[];
  /** Keeps a copy of another machine's record (several machines), so it can be shown and answered here; false if one is here already. */
  adopt(record: ApprovalRecord): boolean;
}

/** A file of the store that did not read: moved aside (never deleted) so the approval can still be answered and expire. */
export interface DamagedFile {
  file: string;
  movedTo: string;
  problem: string;
}

/** One line for a person about a damaged file the store moved aside. */
export function damageMessage(damage: DamagedFile): string {
  const what = damage.file.endsWith(".answer.json")
    ? "the approval can be answered again, and is denied when it expires"
    : "that approval is gone: it is denied when it expires, and its task asks again if it restarts";
  return `APPROVAL FILE DAMAGED (${damage.problem}): ${damage.file} moved to ${damage.movedTo}; ${what}`;
}

export interface ApprovalStoreOptions {
  clock: Clock;
  expireMs: number;
  /** `false` leaves only the periodic look (tests of what happens where a folder's watch sees nothing). */
  watch?: boolean;
  /** Told about each damaged file moved aside, to say so where the person sees it. Must not throw. */
  onDamaged?(damage: DamagedFile): void;
}

export function createApprovalStore(dir: string, options: ApprovalStoreOptions): ApprovalStore {
  const { clock, expireMs } = options;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const recordPath = (id: string) => join(dir, `${id}.json`);
  const answerPath = (id: string) => join(dir, `${id}.answer.json`);

  /**
   * Reads one of the store's files. One that does not read is moved aside and reported: an answer
   * file no one can read would otherwise block every later answer and the expiry too (an answer is
   * created exclusively), and the task would wait forever. Undefined for a file not there (or not
   * readable at all: left alone).
   */
  const readOrSetAside = <T>(path: string, parse: (value: unknown) => T | undefined): T | undefined => {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
    let problem: string;
    try {
      const value = parse(JSON.parse(text));
      if (value !== undefined) return value;
      problem = "not of the expected shape";
    } catch (error) {
      problem = text.length === 0 ? "the file is empty" : (error as Error).message;
    }
    const movedTo = `${path}.damaged-${new Date(clock.now()).toISOString().replace(/[:.]/g, "-")}-${randomBytes(2).toString("hex")}`;
    try {
      renameSync(path, movedTo);
    } catch {
      return undefined; // another process moved it first, and says so
    }
    options.onDamaged?.({ file: path, movedTo, problem });
    return undefined;
  };
  const get = (id: string): ApprovalRecord | undefined => {
    if (!/^[a-z0-9]{4,16}$/.test(id)) return undefined;
    return readOrSetAside(recordPath(id), (value) => (typeof (value as ApprovalRecord | null)?.expires_at === "number" ? (value as ApprovalRecord) : undefined));
  };
  const answerOf = (id: string): ApprovalAnswer | undefined => readOrSetAside(answerPath(id), parseAnswer);
  /** Exclusive: hard-linking a finished temp file fails if an answer already exists. */
  const writeAnswer = (id: string, answer: ApprovalAnswer): boolean => {
    const temp = join(dir, `.${id}.${process.pid}.${randomBytes(4).toString("hex")}`);
    writeFileSync(temp, JSON.stringify(answer));
    try {
      linkSync(temp, answerPath(id));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw error;
    } finally {
      rmSync(temp, { force: true });
    }
  };

  /**
   * Records `answer` unless one stands; returns the one that stands. A damaged answer file is moved
   * aside by `answerOf` and the write tried again, a bounded number of times (never a loop).
   */
  const settleWith = (id: string, answer: ApprovalAnswer): { answer: ApprovalAnswer; mine: boolean } => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const standing = answerOf(id);
      if (standing) return { answer: standing, mine: false };
      if (writeAnswer(id, answer)) return { answer, mine: true };
    }
    throw new Error(`the answer file of approval ${id} (${answerPath(id)}) keeps being replaced by one that does not read`);
  };
  const refusal = (id: string, existing: ApprovalAnswer): AnswerResult => {
    const what = existing.decision === "expired" ? `expired at ${new Date(existing.at).toISOString()} and was denied` : `was already answered (${existing.decision}) by ${existing.by}`;
    return { ok: false, problem: existing.decision === "expired" ? "expired" : "answered", message: `approval ${id} ${what}` };
  };

  const store: ApprovalStore = {
    dir,
    create(fields) {
      const now = clock.now();
      const record: ApprovalRecord = { ...fields, id: newId(), asked_at: now, expires_at: now + expireMs };
      const temp = join(dir, `.${record.id}.tmp`);
      writeFileSync(temp, JSON.stringify(record, null, 2));
      renameSync(temp, recordPath(record.id));
      return record;
    },
    get,
    find(session, toolUseId, target) {
      return store.all().find((record) => record.session === session && record.tool_use_id === toolUseId && record.target === target);
    },
    answerOf,
    answer(id, answer) {
      const record = get(id);
      if (!record) return { ok: false, problem: "unknown", message: `there is no approval ${id}; \`nightshift approve\` with no id lists the pending ones` };
      const late = clock.now() >= record.expires_at;
      const settled = settleWith(id, late ? { decision: "expired", by: "expiry", at: record.expires_at } : { ...answer, at: clock.now() });
      if (late || !settled.mine) return refusal(id, settled.answer); // expired, or answered before (a race lost: the winner)
      return { ok: true, record };
    },
    wait(record, signal) {
      return new Promise((resolve, reject) => {
        const settle = () => {
          const answer = answerOf(record.id);
          if (!answer) return false;
          cleanup();
          resolve(answer);
          return true;
        };
        // An answer from another process (`nightshift approve`) is a new file: the folder's watch
        // sees it at once. A watch can miss one (macOS coalesces FSEvents, network folders send
        // none, Linux runs out of inotify watches) or fail to start, so a look every few seconds
        // backs it up while this one approval waits.
        let watcher: FSWatcher | undefined;
        try {
          if (options.watch !== false) {
            watcher = watch(dir, () => void settle());
            watcher.on("error", () => watcher?.close());
          }
        } catch {
          watcher = undefined;
        }
        let cancelLook = () => {};
        const look = () => {
          cancelLook = clock.setTimer(() => {
            if (!settle()) look();
          }, ANSWER_POLL_MS);
        };
        look();
        const cancelExpiry = clock.setTimer(() => {
          try {
            settleWith(record.id, { decision: "expired", by: "expiry", at: record.expires_at });
          } catch (error) {
            cleanup();
            reject(error);
            return;
          }
          settle();
        }, Math.max(0, record.expires_at - clock.now()));
        const onAbort = () => {
          cleanup();
          reject(signal!.reason);
        };
        const cleanup = () => {
          watcher?.close();
          cancelLook();
          cancelExpiry();
          signal?.removeEventListener("abort", onAbort);
        };
        if (signal?.aborted) return onAbort();
        signal?.addEventListener("abort", onAbort, { once: true });
        settle(); // answered before we started watching (or while the process was down)
      });
    },
    pending() {
      return store.all().filter((record) => !answerOf(record.id) && record.expires_at > clock.now());
    },
    adopt(record) {
      if (!/^[a-z0-9]{4,16}$/.test(record.id) || existsSync(recordPath(record.id))) return false;
      const temp = join(dir, `.${record.id}.tmp`);
      writeFileSync(temp, JSON.stringify(record, null, 2));
      renameSync(temp, recordPath(record.id));
      return true;
    },
    all() {
      if (!existsSync(dir)) return [];
      return readdirSync(dir)
        .filter((name) => /^[a-z0-9]+\.json$/.test(name))
        .map((name) => get(name.slice(0, -5)))
        .filter((record): record is ApprovalRecord => record !== undefined)
        .sort((a, b) => a.asked_at - b.asked_at);
    },
  };
  return store;
}

/** How often a waiting approval looks for its answer besides watching the folder. */
export const ANSWER_POLL_MS = 5_000;

/** Short, typable, unambiguous: 6 characters of a–z and 2–9. */
function newId(): string {
  const alphabet = "abcdefghijkmnpqrstuvwxyz23456789";
  return [...randomBytes(6)].map((byte) => alphabet[byte % alphabet.length]).join("");
}
