import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { Check } from "../cli/doctor.ts";
import { login, send, setupDashboard, type Setup } from "./support/dashboard.ts";

let current: Setup | undefined;
afterEach(() => {
  current?.cleanup();
  current = undefined;
});

async function signedIn(checks: () => Promise<Check[]>): Promise<{ s: Setup; session: string }> {
  const s = (current = setupDashboard({ checks }));
  return { s, session: (await login(s)).session };
}

describe("dashboard Health page", () => {
  it("lists doctor's checks marked ✓, ! and ✗ with the fixes of failing ones, escaped", async () => {
    const checks: Check[] = [
      { ok: true, label: "sandbox works (bwrap)", fix: "never shown for a passing check" },
      { ok: false, level: "warn", label: "memory is at 90% of memory.cap", fix: "raise memory.cap" },
      { ok: false, label: "Telegram refused the token <img src=x onerror=alert(1)>", fix: "check TELEGRAM_BOT_TOKEN from @BotFather" },
    ];
    const { s, session } = await signedIn(async () => checks);
    const response = await send(s, "/health", { cookie: session });
    assert.equal(response.status, 200);
    const page = await response.text();
    assert.match(page, /<h1>Health<\/h1>[^]*1 problem to fix\./);
    assert.match(page, /class="card ok"><span class="mark"[^>]*>✓<\/span> sandbox works \(bwrap\)<\/li>/);
    assert.match(page, /class="card warning"><span class="mark"[^>]*>!<\/span> memory is at 90% of memory\.cap<p class="quiet">fix: <code>raise memory\.cap<\/code>/);
    assert.match(page, /class="card problem"><span class="mark"[^>]*>✗<\/span> Telegram refused the token &lt;img src=x onerror=alert\(1\)&gt;<p class="quiet">fix: <code>check TELEGRAM_BOT_TOKEN from @BotFather<\/code>/);
    assert.doesNotMatch(page, /never shown/);
    assert.doesNotMatch(page, /<img/);
  });

  it("checks again each time the page is loaded, and says so when the checks cannot run", async () => {
    let runs = 0;
    const { s, session } = await signedIn(async () => {
      runs++;
      if (runs === 2) throw new Error("probe crashed");
      return [{ ok: true, label: `run ${runs}` }];
    });
    assert.match(await (await send(s, "/health", { cookie: session })).text(), /All good\.[^]*run 1/);
    const failed = await send(s, "/health", { cookie: session });
    assert.equal(failed.status, 200);
    assert.match(await failed.text(), /1 problem to fix\.[^]*✗<\/span> the checks could not run: probe crashed/);
    assert.match(await (await send(s, "/health", { cookie: session })).text(), /run 3/);
    assert.equal(runs, 3);
  });

  it("needs a session and is in the nav", async () => {
    let runs = 0;
    const { s, session } = await signedIn(async () => (runs++, []));
    assert.equal((await send(s, "/health")).status, 401);
    assert.equal(runs, 0, "no check runs for a stranger");
    assert.match(await (await send(s, "/", { cookie: session })).text(), /<nav class="top">[^]*<a href="\/health">Health<\/a>[^]*<\/nav>/);
  });
});
