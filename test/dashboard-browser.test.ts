import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { openMemory } from "../memory/index.ts";
import { systemClock } from "../runtime/clock.ts";
import { launchChromium, PHONE, signIn, startDashboardDaemon, type DashboardDaemon } from "./support/browser.ts";
import { until } from "./support/cli.ts";
import type { RecordedRequest, Reply } from "./support/messages-api.ts";
import { needs } from "./support/prerequisites.ts";

/**
 * The dashboard in a real browser: headless Chromium (Debian's chromium-headless-shell, driven by
 * playwright-core) against a real daemon whose model is the Messages API stand-in. The rest of the
 * dashboard is tested through `app.request()`; this file proves what only a browser can: the login
 * script, forms posted by a real page, live updates through EventSource (across a daemon restart),
 * and the layout at a phone's width.
 */

/** One unbroken run of characters, as a URL, a hash or minified output are: the layout's worst case. */
const UNBROKEN = "x".repeat(400);
/** A path of two 200-character names (a file name may have 255 bytes). */
const LONG_NAME = `${"y".repeat(200)}/${"z".repeat(200)}.txt`;
const LONG_PATH = `/srv/${"deeply-nested-folder-name-without-spaces/".repeat(8)}missing.txt`;

/** Steps of the "[live]" task the test lets through one at a time: step n answers once gate n opens. */
const liveGates = new Map<number, { open(): void; opened: Promise<void> }>();
function gate(step: number) {
  let entry = liveGates.get(step);
  if (!entry) {
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    liveGates.set(step, (entry = { open, opened }));
  }
  return entry;
}

/** The agent's side, decided from each request alone: each task's prompt carries a marker. */
function agent(daemon: () => DashboardDaemon) {
  return async (request: RecordedRequest): Promise<Reply> => {
    if (request.rawBody.includes("[live]")) {
      // Its step is how many answers the conversation already has; a resumed session asks the same step again.
      const step = request.body.messages.filter((message: { role: string }) => message.role === "assistant").length + 1;
      await gate(step).opened;
      if (step < 3) return { content: [{ type: "text", text: `Step ${step} of the live task.` }, { type: "tool_use", name: "list_files", input: { path: "." } }] };
      return { content: [{ type: "text", text: "The live task is finished." }] };
    }
    const last = request.body.messages.at(-1);
    const answered = Array.isArray(last.content) && last.content.some((block: { type: string }) => block.type === "tool_result");
    if (request.rawBody.includes("[approve-me]")) {
      if (!answered) return { content: [{ type: "tool_use", name: "write_file", input: { path: join(daemon().outside, "approved.txt"), content: "written after approval" } }] };
      return { content: [{ type: "text", text: "Wrote it." }] };
    }
    if (request.rawBody.includes("[ask-long]")) {
      // Left unanswered: the Now page shows it with its long target.
      if (!answered) return { content: [{ type: "tool_use", name: "write_file", input: { path: join(daemon().outside, LONG_NAME), content: UNBROKEN } }] };
      return { content: [{ type: "text", text: "Not written." }] };
    }
    if (request.rawBody.includes("[long-output]")) {
      if (!answered) return { content: [{ type: "text", text: `Reading ${UNBROKEN}` }, { type: "tool_use", name: "read_file", input: { path: LONG_PATH } }] };
      return { content: [{ type: "text", text: `Nothing there: ${UNBROKEN}` }] };
    }
    return { content: [{ type: "text", text: "Done." }] };
  };
}

/** MEMORY.md in two versions (so the page draws a diff), one entry a single unbroken word. */
function seedMemory(home: string): void {
  const memory = openMemory(home, systemClock, 4096);
  const source = memory.journal.append({ at: systemClock.now(), kind: "note", session: "t1", source: "agent", text: `Found at https://example.com/${UNBROKEN}` });
  memory.store.write({ entries: [{ id: "a1", text: "The build runs on Fridays", sources: [source.id], added: "2026-12-01" }], other: "# Memory\n" });
  memory.store.write({ entries: [{ id: "a1", text: `The build log lives at ${UNBROKEN}`, sources: [source.id], added: "2026-12-01", updated: "2026-12-02" }], other: "# Memory\n" });
}

/** Reloads `page` until `selector` is on it: for pages that are not live (the Tasks list). */
async function reloadUntil(page: Page, selector: string, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await page.locator(selector).count()) === 0) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await page.reload();
  }
}

/** Without Chromium each test is skipped with the reason and the install command (counted as skipped). */
const chromium = needs("chromium-headless-shell");

describe("the dashboard in a real browser", () => {
  let daemon: DashboardDaemon;
  let browser: Browser;
  before(async () => {
    if (chromium.skip) return;
    [daemon, browser] = await Promise.all([startDashboardDaemon({ responder: agent(() => daemon), seed: seedMemory }), launchChromium()]);
  });
  after(async () => {
    await browser?.close();
    await daemon?.close();
  });

  it("signs in through the printed link by pressing the button, and the same link fails a second time", chromium, async () => {
    const link = await daemon.loginLink();
    const first = await (await browser.newContext({ viewport: PHONE })).newPage();
    await first.goto(link);
    assert.equal(new URL(first.url()).hash, "", "the secret leaves the address bar");
    await first.getByRole("button", { name: "Sign in to the dashboard" }).click();
    await first.waitForURL(`${daemon.origin}/`);
    assert.equal(await first.locator("h1").textContent(), "Now");
    const cookie = (await first.context().cookies()).find((item) => item.name === "ns_session");
    assert.equal(cookie?.httpOnly, true);
    assert.equal(cookie?.sameSite, "Strict");

    const second = await (await browser.newContext({ viewport: PHONE })).newPage();
    await second.goto(link);
    await second.getByRole("button", { name: "Sign in to the dashboard" }).click();
    await second.getByText(/already used, has expired or is not one/).waitFor();
    assert.equal(new URL(second.url()).pathname, "/login");
    assert.deepEqual(await second.context().cookies(), []);
    const response = await second.goto(`${daemon.origin}/`);
    assert.equal(response?.status(), 401);
  });

  it("an approval answered on the Now page lets the session continue", chromium, async () => {
    const page = await signIn(browser, daemon);
    daemon.drop("approve me.md", "Approve me", "Write the file. [approve-me]");
    // No reload: the Now page follows the daemon's events and fetches itself when something changed.
    const card = page.locator("article.card");
    await card.waitFor({ timeout: 15_000 });
    assert.match((await card.textContent()) ?? "", /write .*outside[/]approved\.txt[^]*a write outside the allowed folders[^]*task: Approve me/);
    await card.getByRole("button", { name: "Allow once" }).click();
    await page.waitForURL(`${daemon.origin}/`);

    const result = join(daemon.home, "outbox", "approve me.md");
    await until(() => existsSync(result), "the task's result");
    assert.match(readFileSync(result, "utf8"), /^---\nstatus: done\n[^]*\n---\nWrote it\.\n$/);
    assert.equal(readFileSync(join(daemon.outside, "approved.txt"), "utf8"), "written after approval");
    await page.goto(`${daemon.origin}/tasks`);
    await page.getByRole("link", { name: "Approve me" }).click();
    assert.equal(await page.locator(".facts .state").textContent(), "done");
    assert.equal(await page.locator(".approval").last().textContent(), "Answered: once by dashboard");
  });

  it("a running task's page shows each step as it happens, and a daemon restart resumes the stream without gaps or doubles", chromium, async () => {
    const page = await signIn(browser, daemon);
    daemon.drop("live.md", "Live task", "Work in steps. [live]");
    await page.goto(`${daemon.origin}/tasks`);
    await reloadUntil(page, 'a.task:has-text("Live task")', "the live task in the list");
    await page.locator("a.task", { hasText: "Live task" }).click();
    await until(() => daemon.api.requests.some((request) => request.rawBody.includes("[live]")), "the live task's first model call");
    // A mark on the window: a reload or a navigation would lose it.
    await page.evaluate("window.stillTheSamePage = true");
    const log = page.locator("#log");

    gate(1).open();
    await log.locator("p.text", { hasText: "Step 1 of the live task." }).waitFor({ timeout: 15_000 });
    await log.locator(".outcome", { hasText: "ok" }).first().waitFor({ timeout: 15_000 });
    assert.equal(await page.evaluate("window.stillTheSamePage"), true, "updated in place, not reloaded");

    // The daemon stops while step 2 waits, and starts again: the tab's stream reconnects by itself.
    assert.equal(await daemon.stop(), 0);
    await daemon.start();
    gate(2).open();
    await log.locator("p.text", { hasText: "Step 2 of the live task." }).waitFor({ timeout: 20_000 });
    gate(3).open();
    await log.locator("p.text", { hasText: "The live task is finished." }).waitFor({ timeout: 15_000 });
    await page.locator("#head .state", { hasText: "done" }).waitFor({ timeout: 15_000 });
    assert.equal(await page.evaluate("window.stillTheSamePage"), true);

    // Exactly what a fresh load of the page draws: nothing missed, nothing twice.
    const live = await log.innerText();
    await page.reload();
    assert.equal(await page.locator("#log").innerText(), live);
    assert.equal(await page.getByText("Step 1 of the live task.").count(), 1);
    assert.match(live, /Resumed \(attempt 1\)/);
  });

  it("nothing is wider than a phone's screen on any page, and links and buttons are 44 px tall", chromium, async () => {
    const page = await signIn(browser, daemon);
    daemon.drop("long output.md", `Long ${UNBROKEN}`, "Read it. [long-output]");
    daemon.drop("ask long.md", `Asks ${UNBROKEN}`, "Write it. [ask-long]");
    await until(() => existsSync(join(daemon.home, "outbox", "long output.md")), "the long task's result");
    await reloadUntil(page, `article.card:has-text("${LONG_NAME}")`, "the long approval on the Now page");
    await page.goto(`${daemon.origin}/tasks`);
    const taskPage = await page.locator("a.task", { hasText: `Long ${UNBROKEN}` }).getAttribute("href");
    assert.ok(taskPage);

    for (const path of ["/", "/tasks", taskPage, "/memory", "/cost", "/health"]) {
      await page.goto(`${daemon.origin}${path}`);
      // Opened as a reader would, so the collapsed output is measured too (a parent before its children).
      for (const summary of await page.locator("details > summary").all()) await summary.click();
      const width = await page.evaluate<number>("document.documentElement.scrollWidth"); // a string: this project has no DOM types
      assert.ok(width <= PHONE.width, `${path} is ${width} px wide`);
      const small: string[] = [];
      for (const target of await page.locator("nav a, button, a.more, a.task, summary, select").all()) {
        const height = (await target.boundingBox())?.height ?? 0;
        if (height < 44) small.push(`${(await target.textContent())?.trim().slice(0, 40)}: ${height} px`);
      }
      assert.deepEqual(small, [], `${path}: targets under 44 px tall`);
    }
  });
});
