import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Bot } from "grammy";
import { createPolling } from "../bot/polling.ts";
import { startBotApi } from "./support/bot-api.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { ALICE, TOKEN } from "./support/telegram-harness.ts";

/** Waits (real time) until `condition` holds: the poll loop runs on real sockets. `step` runs between looks (moving the fake clock). */
async function settled(condition: () => boolean, what: string, step = () => {}): Promise<void> {
  for (const deadline = Date.now() + 60_000; !condition(); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
    step();
  }
}

/** The poll loop against the Bot API stand-in, on a fake clock: whether Telegram answers, which decides who keeps the Telegram lease. */
describe("polling Telegram", () => {
  it("counts Telegram out of reach from the first failed request, not from the last answered poll, until a poll is answered again", async () => {
    const telegram = await startBotApi({ token: TOKEN, botUsername: "night_bot" });
    const clock = new FakeClock();
    const bot = new Bot(TOKEN, { client: { apiRoot: telegram.url } });
    const handled: number[] = [];
    const polling = createPolling({ bot, clock, settings: { poll_timeout: 30_000, watchdog: 90_000 }, offset: { first: 0, handled: (next) => void handled.push(next) }, handle: async () => {}, log: () => {}, describe: (error) => String(error) });
    try {
      polling.start();
      const first = polling.polled();
      telegram.sendText(ALICE, "hello");
      await first;
      assert.deepEqual(handled, [2]);
      clock.advance(600_000); // quiet for ten minutes (or this process was stopped): no failure seen
      assert.equal(polling.unreachableSince(), undefined);

      telegram.down();
      const cutAt = clock.now();
      await settled(() => polling.unreachableSince() !== undefined, "the failed poll");
      assert.equal(polling.unreachableSince(), cutAt, "from the first failure, not the last answered poll");
      // Through its back-offs, polled again and refused again.
      await settled(() => telegram.calls.filter((call) => call.method === "getUpdates" && call.status === 0).length >= 2, "the second refused poll", () => clock.advance(1000));
      assert.equal(polling.unreachableSince(), cutAt, "still since the first");

      telegram.up();
      let answered = false;
      void polling.polled().then(() => (answered = true));
      telegram.sendText(ALICE, "back");
      await settled(() => answered, "an answered poll", () => clock.advance(1000));
      assert.equal(polling.unreachableSince(), undefined);
    } finally {
      await polling.stop();
      await telegram.close();
    }
  });
});
