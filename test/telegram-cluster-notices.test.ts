import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { nightshift, until } from "./support/cli.ts";
import { eventually, noDatabase, type Machine } from "./support/cluster.ts";
import { ALICE, text } from "./support/telegram-harness.ts";
import { answers, runsBot, startTelegramMachines } from "./support/telegram-machines.ts";

/**
 * What reaches Telegram from a machine that does not run the bot, with several machines on one
 * PostgreSQL: real `nightshift start` processes, one Bot API stand-in, one Messages API stand-in.
 * In each test m2 starts first and runs the bot; m1 runs what is asked of it.
 */

const skip = noDatabase ? { skip: noDatabase } : {};

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

async function botOnM2(options: { env?: NodeJS.ProcessEnv } = {}) {
  const cluster = await startTelegramMachines(["m1", "m2"], options);
  cleanup = cluster.cleanup;
  const [m1, m2] = cluster.machines as [Machine, Machine];
  return { ...cluster, m1, m2 };
}

async function startBoth(cluster: Awaited<ReturnType<typeof botOnM2>>) {
  await cluster.m2.start();
  await until(() => runsBot(cluster.m2) === 1, "m2 to run the bot");
  await cluster.m1.start();
  await until(() => cluster.m1.daemon!.output().includes("Telegram: machine m2 runs the bot"), "m1 to see m2 run the bot");
}

/** A task file for `machine` whose workdir is a folder there, so it runs there. */
function pinnedTask(machine: Machine, name: string, body: string, extra = "") {
  const folder = join(machine.home, "..", `${machine.name}-${name}`);
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(machine.home, "inbox", `${name}.md`), `---\ntitle: ${name}\nworkdir: ${folder}\n${extra}---\n${body}\n`);
}

const chat = (cluster: Awaited<ReturnType<typeof botOnM2>>, part: string) => cluster.telegram.messages(ALICE.id).filter((message) => message.text?.includes(part));
const unsent = async (cluster: Awaited<ReturnType<typeof botOnM2>>) => Number((await cluster.sql<{ n: string }[]>`SELECT count(*) AS n FROM telegram_notices WHERE NOT sent`)[0]!.n);

describe("Telegram notices from a machine without the bot", skip, () => {
  it("tells the chat, through the bot on another machine, of a task that finished and an inbox file rejected there, each once", async () => {
    const cluster = await botOnM2();
    cluster.api.respondWith(() => text("the inbox answer"));
    await startBoth(cluster);
    pinnedTask(cluster.m1, "tidy", "Tidy up.", "notify: true\n");
    writeFileSync(join(cluster.m1.home, "inbox", "bad.md"), "---\npriority: urgent\n---\nx\n");

    await until(() => answers(cluster.telegram, "the inbox answer").length === 1 && chat(cluster, "inbox/bad.md was rejected").length === 1, "both notices in the chat", 30_000);
    const [row] = await cluster.sql<{ machine: string }[]>`SELECT machine FROM tasks WHERE record->>'title' = 'tidy'`;
    assert.equal(row?.machine, "m1");
    assert.equal(await eventually(() => unsent(cluster), (n) => n === 0), 0, "every queued notice taken");
    const [queued] = await cluster.sql<{ n: string }[]>`SELECT count(*) AS n FROM telegram_notices WHERE machine = 'm1'`;
    assert.equal(Number(queued!.n), 2, "queued by m1: the result and the rejection");
    assert.equal(answers(cluster.telegram, "the inbox answer").length, 1);
    assert.equal(chat(cluster, "inbox/bad.md was rejected").length, 1);
  });

  it("says once, through the bot, that a silent machine's running task waits for it", async () => {
    const cluster = await botOnM2({ env: { NIGHTSHIFT_TEST_MACHINE_SILENT_MS: "3000" } });
    // The model answers only once the test lets it: the task is surely running while m1 is stopped.
    let answer = () => {};
    const answered = new Promise<void>((resolve) => (answer = resolve));
    cluster.api.respondWith(async () => {
      await answered;
      return text("the long answer");
    });
    await startBoth(cluster);
    pinnedTask(cluster.m1, "long", "Take your time.");
    await until(() => cluster.api.requests.length === 1, "the task's model call");
    const running = await eventually(async () => (await cluster.sql<{ id: string }[]>`SELECT id FROM tasks WHERE state = 'running' AND machine = 'm1'`)[0]?.id, (id) => id !== undefined);
    assert.ok(running, "the task runs on m1, as the store says");

    cluster.m1.daemon!.child.kill("SIGSTOP");
    await until(() => chat(cluster, "m1 is silent").length === 1, "the bot to say m1 is silent", 30_000);
    assert.match(chat(cluster, "m1 is silent")[0]!.text!, new RegExp(`task ${running} \\(long\\) waits for it`));
    cluster.m1.daemon!.child.kill("SIGCONT");
    answer();
    await until(() => answers(cluster.telegram, "the long answer").length === 1, "the task to finish once m1 is back", 30_000);
    await eventually(() => unsent(cluster), (n) => n === 0);
    assert.equal(chat(cluster, "m1 is silent").length, 1, "said once for the one silence");
  });

  it("continues a Telegram task on the machine that ran it when the reply reaches the bot on another", async () => {
    const cluster = await botOnM2();
    cluster.api.respondWith((request) => {
      const body = JSON.stringify(request.body.messages);
      if (body.includes("HOLD-ME")) return { stall: true };
      return text(body.includes("and then?") ? "the follow-up answer" : "the first answer");
    });
    await startBoth(cluster);
    // m2 (one task at a time) is kept busy, so m1 takes the Telegram task.
    pinnedTask(cluster.m2, "busy", "HOLD-ME");
    await until(() => cluster.api.requests.some((request) => JSON.stringify(request.body).includes("HOLD-ME")), "m2 to be busy");
    cluster.telegram.sendText(ALICE, "first question");
    await until(() => answers(cluster.telegram, "the first answer").length === 1, "the first answer", 30_000);
    const [task] = await cluster.sql<{ id: string; machine: string }[]>`SELECT id, machine FROM tasks WHERE record->>'origin' = 'telegram'`;
    assert.equal(task?.machine, "m1");

    cluster.telegram.sendText(ALICE, "and then?", { reply_to_message_id: answers(cluster.telegram, "the first answer")[0]!.message_id });
    await until(() => answers(cluster.telegram, "the follow-up answer").length === 1, "the follow-up's answer", 30_000);
    const tasks = await cluster.sql<{ id: string; machine: string }[]>`SELECT id, machine FROM tasks WHERE record->>'origin' = 'telegram'`;
    assert.deepEqual(tasks.map((row) => ({ ...row })), [{ id: task!.id, machine: "m1" }], "the same task went on, on m1: no new task");
    const followUp = cluster.api.requests.find((request) => JSON.stringify(request.body.messages).includes("and then?"))!;
    assert.match(JSON.stringify(followUp.body.messages), /the first answer/, "continued from its log, with what came before");
    assert.match(readFileSync(join(cluster.m1.home, "sessions", `${task!.id}.jsonl`), "utf8"), /and then\?/);
  });

  it("counts every machine's tasks in the digest asked on a machine without the bot, names the machines, and sends it to the chat", async () => {
    const cluster = await botOnM2();
    cluster.api.respondWith(() => text("done"));
    await startBoth(cluster);
    pinnedTask(cluster.m1, "on-m1", "One.");
    pinnedTask(cluster.m2, "on-m2", "Two.");
    await eventually(async () => Number((await cluster.sql<{ n: string }[]>`SELECT count(*) AS n FROM tasks WHERE state = 'done'`)[0]!.n), (n) => n === 2);

    const digest = await nightshift(["digest"], cluster.m1.env);
    assert.equal(digest.code, 0, digest.stderr);
    assert.match(digest.stdout, /Tasks: 2 done, 0 failed or cancelled/);
    assert.match(digest.stdout, /Machines: m1 1, m2 1/);
    assert.match(digest.stdout, /on-m1 · m1/);
    assert.match(digest.stdout, /on-m2 · m2/);
    await until(() => chat(cluster, "Machines: m1 1, m2 1").length === 1, "the digest in the chat", 30_000);
  });
});
