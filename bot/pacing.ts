// How fast the outbox may talk to Telegram. The figures come from Telegram's Bot FAQ, "My bot is
// hitting limits, how do I avoid this?" (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
//   - in one chat, avoid more than one message per second; short bursts over it may be allowed,
//     "but eventually you'll begin receiving 429 errors";
//   - no more than 20 messages per minute to the same group;
//   - bulk notifications: "not more than 30 messages per second or so" over all chats.
// A 429 carries `parameters.retry_after` (seconds; Bot API, ResponseParameters): the outbox waits
// exactly that long for the chat that got it. The FAQ gives no burst size; 3 is ours: a task's
// status message, its result and the status message's final edit fit in one burst.
import type { Clock } from "../runtime/index.ts";

export interface PacingLimits {
  /** A private chat's bucket refills this many a second (default 1). */
  perChatPerSecond?: number;
  /** A group's (negative chat id) bucket refills this many a minute (default 17: with the burst, at most 20 in any minute). */
  groupPerMinute?: number;
  /** Every chat's bucket holds this many (default 3): a burst that goes at once. */
  perChatBurst?: number;
  /** All chats together: at most this many requests in any 1,000 ms (default 30), a burst included. */
  globalPerSecond?: number;
}

export const DEFAULT_PACING: Required<PacingLimits> = { perChatPerSecond: 1, groupPerMinute: 17, perChatBurst: 3, globalPerSecond: 30 };

/** A token bucket: `burst` tokens at most, refilled continuously at `perMs` a millisecond. */
export interface Bucket {
  /** Milliseconds until the bucket holds `need` tokens (0: now). `need` ≤ the burst. */
  waitMs(need: number): number;
  /** Spends one token (the bucket may go below one until it refills). */
  take(): void;
}

export function createBucket(clock: Clock, perSecond: number, burst: number): Bucket {
  let tokens = burst;
  let at = clock.now();
  const refill = (): number => {
    const now = clock.now();
    tokens = Math.min(burst, tokens + ((now - at) * perSecond) / 1000);
    at = now;
    return tokens;
  };
  return {
    waitMs: (need) => {
      const missing = need - refill();
      return missing <= 0 ? 0 : Math.ceil((missing * 1000) / perSecond);
    },
    take: () => {
      tokens = refill() - 1;
    },
  };
}

/** The bucket for one chat: private chats (positive ids) and groups (negative ids) differ. */
export function chatBucket(clock: Clock, chatId: number, limits: Required<PacingLimits>): Bucket {
  return createBucket(clock, chatId < 0 ? limits.groupPerMinute / 60 : limits.perChatPerSecond, limits.perChatBurst);
}

/**
 * The global limit as a sliding window. A request counts from its start until 1 s after its answer:
 * it reached Telegram somewhere in between, so however long requests take, no second there sees
 * more than the limit.
 */
export interface GlobalWindow {
  /** Milliseconds until one more request may start (Infinity: once a request in flight answers). */
  waitMs(inFlight: number): number;
  /** A request answered now. */
  ended(): void;
}

export function createGlobalWindow(clock: Clock, perSecond: number): GlobalWindow {
  const ended: number[] = [];
  return {
    waitMs(inFlight) {
      const now = clock.now();
      while (ended.length > 0 && ended[0]! <= now - 1000) ended.shift();
      if (inFlight + ended.length < perSecond) return 0;
      return ended.length > 0 ? ended[0]! + 1000 - now : Infinity;
    },
    ended: () => void ended.push(clock.now()),
  };
}
