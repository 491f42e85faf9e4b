import { waitOn, type Clock } from "../clock.ts";

/**
 * What a machine does while the shared PostgreSQL store cannot be reached (issue 16). The store
 * client (postgres.js) opens connections lazily and reconnects by itself at the next query; a
 * query already sent when the server went away is rejected (CONNECTION_CLOSED, or the server's
 * 57P01 "terminating connection due to administrator command"), and every query fails at once
 * while nothing listens (ECONNREFUSED). Its LISTEN connection reconnects by itself with a backoff.
 * So nothing here reconnects: callers try again, and this module tells a store outage from any
 * other failure, says it once, says its end once, and paces the tries.
 */

/** Connection failures of the store, as postgres.js and Node report them (not a refused query, not a bug). */
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "ENOTFOUND", "EAI_AGAIN", "CONNECTION_CLOSED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT"]);
/** SQLSTATEs of a server that is going away or not up yet: admin_shutdown, crash_shutdown, cannot_connect_now; class 08 is a connection exception. */
const SERVER_GOING = new Set(["57P01", "57P02", "57P03"]);

/** True when `error` means the store cannot be reached now (as opposed to a query it refused). */
export function storeUnreachable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const visit = (cause: unknown, depth: number): boolean => {
    if (!cause || typeof cause !== "object" || depth > 5 || seen.has(cause)) return false;
    seen.add(cause);
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && (NETWORK_CODES.has(code) || SERVER_GOING.has(code) || /^08/.test(code))) return true;
    // Node's connect to a name with several addresses fails with an AggregateError of each try.
    const errors = (cause as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.some((each) => visit(each, depth + 1))) return true;
    return visit((cause as { cause?: unknown }).cause, depth + 1);
  };
  return visit(error, 0);
}

export interface StoreOutage {
  /** The failure that began it, as the error said it (never the URL: postgres.js names host:port only). */
  message: string;
  since: number;
}

export type StoreOutageChange = { state: "down"; outage: StoreOutage } | { state: "up"; outage: StoreOutage; at: number };

export interface StoreWatch {
  /** A store call failed: true (and the outage said, once) when the store is unreachable; false for any other failure. */
  failed(error: unknown): boolean;
  /** A store call worked: an outage under way ends (said once). */
  succeeded(): void;
  /**
   * Runs `work` until it does not fail for an unreachable store, pausing between tries (500 ms,
   * doubling up to 5 s). Any other failure is thrown at once; an abort of `signal` while waiting
   * rejects with its reason. `work` must be safe to repeat.
   */
  retry<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  readonly outage: StoreOutage | undefined;
}

/**
 * `report` is called once when an outage begins and once when it ends; it must not throw. An
 * outage that begins within `quietMs` (default 60 s) of the end of the last one said is not said,
 * nor is its end: a store that flaps is said once. It does flap on its return: postgres.js
 * (3.4.9) keeps the 57P01 a connection got as the server shut down, and fails the first query on
 * that connection with it once the server is back (without running it).
 */
export function createStoreWatch(options: { clock: Clock; report?(change: StoreOutageChange): void; firstDelayMs?: number; maxDelayMs?: number; quietMs?: number }): StoreWatch {
  const { clock } = options;
  const first = options.firstDelayMs ?? 500;
  const max = options.maxDelayMs ?? 5_000;
  const quietMs = options.quietMs ?? 60_000;
  let outage: (StoreOutage & { said: boolean }) | undefined;
  let lastEnded = Number.NEGATIVE_INFINITY;
  const tell = (change: StoreOutageChange) => {
    try {
      options.report?.(change);
    } catch {
      // must not throw: a broken reporter must not stop the machine from trying again
    }
  };
  const watch: StoreWatch = {
    failed(error) {
      if (!storeUnreachable(error)) return false;
      if (!outage) {
        const now = clock.now();
        outage = { message: (error as Error)?.message ?? String(error), since: now, said: now - lastEnded >= quietMs };
        if (outage.said) tell({ state: "down", outage: { message: outage.message, since: now } });
      }
      return true;
    },
    succeeded() {
      if (!outage) return;
      const { said, message, since } = outage;
      outage = undefined;
      if (!said) return;
      lastEnded = clock.now();
      tell({ state: "up", outage: { message, since }, at: lastEnded });
    },
    async retry(work, signal) {
      for (let attempt = 0; ; attempt++) {
        try {
          const result = await work();
          watch.succeeded();
          return result;
        } catch (error) {
          if (!watch.failed(error)) throw error;
        }
        await waitOn(clock, Math.min(max, first * 2 ** attempt), signal);
      }
    },
    get outage() {
      return outage && { message: outage.message, since: outage.since };
    },
  };
  return watch;
}

/**
 * `target` with each of its methods watched: a result ends an outage, an unreachable store begins
 * one (the error is still thrown). Every call to the shared store goes through it, so whichever
 * call first fails or first works again says so.
 */
export function watched<T extends object>(target: T, watch: StoreWatch): T {
  const wrapped = {} as Record<string, unknown>;
  for (const key of Object.keys(target) as Array<keyof T & string>) {
    const value = target[key];
    // Data, and a function that is an object of its own (the pool, `sql`, with its `begin` and `json`), are passed as they are.
    if (typeof value !== "function" || Object.keys(value).length > 0) {
      Object.defineProperty(wrapped, key, { get: () => target[key], enumerable: true });
      continue;
    }
    wrapped[key] = async (...args: unknown[]) => {
      try {
        const result = await (value as (...args: unknown[]) => Promise<unknown>).apply(target, args);
        watch.succeeded();
        return result;
      } catch (error) {
        watch.failed(error);
        throw error;
      }
    };
  }
  return wrapped as T;
}
