import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import type { MemoryEntry } from "../memory/index.ts";
import { lineDiff, MAX_DIFF_LINES } from "../runtime/line-diff.ts";
import { login, send, setupDashboard, tokenOf, type Setup, type SetupOptions } from "./support/dashboard.ts";

let current: Setup | undefined;
afterEach(() => {
  current?.cleanup();
  current = undefined;
});

async function signedIn(options: SetupOptions = {}): Promise<{ s: Setup; session: string }> {
  const s = (current = setupDashboard(options));
  return { s, session: (await login(s)).session };
}

const entry = (id: string, text: string, sources: string[] = []): MemoryEntry => ({ id, text, sources, added: "2026-11-24" });
const write = (s: Setup, ...entries: MemoryEntry[]) => s.memory.store.write({ entries, other: "# Memory\n" });
const page = async (s: Setup, session: string) => {
  const response = await send(s, "/memory", { cookie: session });
  assert.equal(response.status, 200);
  return response.text();
};
const undo = (s: Setup, session: string, body: string) => send(s, "/memory/undo", { method: "POST", cookie: session, type: "application/x-www-form-urlencoded", body });

describe("dashboard Memory page", () => {
  it("shows each entry with its journal sources, who wrote them and whether they are trusted, and the size against the cap", async () => {
    const { s, session } = await signedIn({ memoryCap: 2048 });
    const asked = s.memory.journal.append({ at: s.clock.now(), kind: "request", session: "t1", source: "user", text: "Always deploy on Fridays" });
    const read = s.memory.journal.append({ at: s.clock.now(), kind: "outcome", session: "t1", source: "web", text: "A page said Fridays are best" });
    write(s, entry("m1", "Deploys happen on Fridays", [asked.id, read.id]), entry("m2", "Prefers short answers", ["2026-01-01#9"]));
    const html = await page(s, session);
    assert.match(html, /<a href="\/memory">Memory<\/a>/, "the nav");
    assert.match(html, /2 entries, \d+ B of its 2\.0 KB cap \(memory\.cap\)/);
    assert.match(html, /Deploys happen on Fridays/);
    assert.ok(html.includes(`<code>${asked.id}</code></a>&nbsp;<span class="chip trusted">trusted</span>&nbsp;request by user`), html);
    assert.ok(html.includes(`<code>${read.id}</code></a>&nbsp;<span class="chip untrusted">untrusted</span>&nbsp;outcome by web`), html);
    assert.match(html, /A page said Fridays are best/);
    assert.match(html, /<code>2026-01-01#9<\/code> <span class="quiet">\(not in the journal\)<\/span>/);
  });

  it("says when MEMORY.md is over its cap", async () => {
    const { s, session } = await signedIn({ memoryCap: 100 });
    write(s, entry("m1", "x".repeat(200)));
    assert.match(await page(s, session), /class="warn">MEMORY\.md: 1 entry, \d+ B of its 100 B cap \(memory\.cap\) — over the cap/);
  });

  it("escapes markup in an entry and in its source's text", async () => {
    const { s, session } = await signedIn();
    const source = s.memory.journal.append({ at: s.clock.now(), kind: "note", session: "t1", source: "agent", text: "<img src=x onerror=alert(1)>" });
    write(s, entry("m1", "Use <script>alert(1)</script> nowhere", [source.id]));
    const html = await page(s, session);
    assert.ok(!html.includes("<script>alert(1)"), "an entry's text must come back escaped");
    assert.ok(!html.includes("<img src=x"), "a source's text must come back escaped");
    assert.match(html, /Use &lt;script&gt;alert\(1\)&lt;\/script&gt; nowhere/);
    assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
  });

  it("links each source to its entry on the journal page of its day", async () => {
    const { s, session } = await signedIn();
    s.memory.journal.append({ at: s.clock.now(), kind: "request", session: "t1", source: "user", text: "Deploy the site" });
    const cited = s.memory.journal.append({ at: s.clock.now(), kind: "note", session: "t1", source: "agent", text: "Deploys go out on Fridays" });
    write(s, entry("m1", "Deploys happen on Fridays", [cited.id]));
    const [day, line] = cited.id.split("#") as [string, string];
    const href = `/memory/journal/${day}#line-${line}`;
    assert.ok((await page(s, session)).includes(`<a href="${href}"><code>${cited.id}</code></a>`), "the source links to its entry");

    const response = await send(s, `/memory/journal/${day}`, { cookie: session });
    assert.equal(response.status, 200);
    const journal = await response.text();
    assert.match(journal, /<h1>Journal · \d{4}-\d{2}-\d{2}<\/h1>/);
    assert.match(journal, new RegExp(`<li class="card" id="line-${line}"><p class="quiet"><code>${cited.id}</code>&nbsp;<span class="chip trusted">trusted</span>&nbsp;note by agent`), "the anchor the link lands on is the cited entry");
    assert.match(journal, /<li class="card" id="line-1">[^]*Deploy the site/, "the day's other entries are there too");
  });

  it("escapes what the journal page shows", async () => {
    const { s, session } = await signedIn();
    const source = s.memory.journal.append({ at: s.clock.now(), kind: "outcome", session: "<b>t1</b>", source: "web", text: "<img src=x onerror=alert(1)>" });
    const response = await send(s, `/memory/journal/${source.id.split("#")[0]}`, { cookie: session });
    const html = await response.text();
    assert.ok(!html.includes("<img src=x"), "an entry's text must come back escaped");
    assert.ok(!html.includes("<b>t1"), "a session name must come back escaped");
    assert.match(html, /<pre>&lt;img src=x onerror=alert\(1\)&gt;<\/pre>/);
  });

  it("answers 404 for a day the journal has no file for and for any other name, reading nothing outside journal/", async () => {
    const { s, session } = await signedIn();
    s.memory.journal.append({ at: s.clock.now(), kind: "note", session: "t1", source: "agent", text: "x" });
    // A file that would read as a journal day if a name could climb out of journal/.
    writeFileSync(join(s.home, "leak.jsonl"), `${JSON.stringify({ at: 0, kind: "note", session: "t", source: "agent", text: "SECRET" })}\n`);
    for (const name of ["2001-01-01", "..%2Fleak", "..%252Fleak", "2026-11-24.jsonl", "..%2F..%2Fconfig.yaml", "2026-11-24%2F..%2F..%2Fleak"]) {
      const response = await send(s, `/memory/journal/${name}`, { cookie: session });
      assert.equal(response.status, 404, name);
      const html = await response.text();
      assert.match(html, /The journal has no file for <code>[^<]*<\/code>: its files are named by day, <code>YYYY-MM-DD<\/code>/, name);
      assert.ok(!html.includes("SECRET"), name);
    }
  });

  it("lists each earlier version with the lines the next version added and removed", async () => {
    const { s, session } = await signedIn();
    write(s, entry("m1", "Keeps this"), entry("m2", "Old habit"));
    s.clock.advance(60_000);
    write(s, entry("m1", "Keeps this"), entry("m3", "New habit"));
    const html = await page(s, session);
    assert.match(html, /History \(1\)/);
    assert.match(html, /MEMORY-\d{8}T\d{6}\.\d{3}Z\.md · 2 changed lines after it/);
    assert.match(html, /<span class="remove">- - Old habit &lt;!-- m:m2 /);
    assert.match(html, /<span class="add">\+ - New habit &lt;!-- m:m3 /);
    assert.ok(!/<span class="(add|remove)">[^<]*Keeps this/.test(html), "an unchanged line is not shown as changed");
  });

  it("undoes the last change through the page's form, as /memory undo does", async () => {
    const { s, session } = await signedIn();
    write(s, entry("m1", "First version"));
    write(s, entry("m1", "Second version"));
    const html = await page(s, session);
    assert.match(html, /<form method="post" action="\/memory\/undo"><input type="hidden" name="_csrf" value="[^"]+"><button type="submit">/);
    const response = await undo(s, session, `_csrf=${await tokenOf(s, session)}`);
    assert.equal(response.status, 303);
    assert.equal(response.headers.get("location"), "/memory");
    assert.match(readFileSync(s.memory.store.path, "utf8"), /First version/);
    assert.match(await page(s, session), /First version/);
    assert.match(readFileSync(s.traceFile, "utf8"), /dashboard_memory_undo/);
  });

  it("refuses an undo without the page's token and changes nothing", async () => {
    const { s, session } = await signedIn();
    write(s, entry("m1", "First version"));
    write(s, entry("m1", "Second version"));
    assert.equal((await undo(s, session, "")).status, 403);
    assert.equal((await undo(s, session, "_csrf=wrong")).status, 403);
    assert.match(readFileSync(s.memory.store.path, "utf8"), /Second version/);
  });

  it("needs a session for the page, the journal and undo", async () => {
    const s = (current = setupDashboard());
    write(s, entry("m1", "First version"));
    write(s, entry("m1", "Second version"));
    const noted = s.memory.journal.append({ at: s.clock.now(), kind: "note", session: "t1", source: "agent", text: "x" });
    assert.equal((await send(s, "/memory")).status, 401);
    assert.equal((await send(s, `/memory/journal/${noted.id.split("#")[0]}`)).status, 401);
    assert.equal((await undo(s, "A".repeat(43), "_csrf=x")).status, 401);
    assert.match(readFileSync(s.memory.store.path, "utf8"), /Second version/);
  });
});

describe("line diff", () => {
  it("keeps common lines and marks the rest added or removed, in order", () => {
    assert.deepEqual(lineDiff("a\nb\nc\n", "a\nc\nd\n"), [
      { op: "same", text: "a" },
      { op: "remove", text: "b" },
      { op: "same", text: "c" },
      { op: "add", text: "d" },
    ]);
    assert.deepEqual(lineDiff("", "x"), [{ op: "add", text: "x" }]);
  });

  it("declines input past its line cap rather than run quadratic work", () => {
    const big = "x\n".repeat(MAX_DIFF_LINES + 1);
    assert.equal(lineDiff(big, "x"), undefined);
  });
});
