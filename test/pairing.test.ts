import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { createPairingStore, type PairingStore } from "../bot/pairing.ts";
import { pairCommand } from "../cli/pair.ts";
import { loadConfig, systemClock, type Clock } from "../runtime/index.ts";
import { startBotApi, type BotApi } from "./support/bot-api.ts";
import { CLI, nightshift, until } from "./support/cli.ts";
import { FakeClock } from "./support/fake-clock.ts";
import { tempDir } from "./support/home.ts";
import { assertOnlySlowHash, oldRecord } from "./support/pairing-record.ts";

const TOKEN = "424242:pairing-test-secret-token";
const alice = { id: 4242, username: "alice", first_name: "Alice" };
const mallory = { id: 666, username: "mallory" };
const MINUTE = 60_000;

let dir: ReturnType<typeof tempDir>;
let home: string;
let folder: string;
beforeEach(() => {
  dir = tempDir();
  home = join(dir.path, "home");
  folder = join(home, "state", "telegram");
});
afterEach(() => dir.cleanup());

describe("pairing store", () => {
  let clock: FakeClock;
  let store: PairingStore;
  beforeEach(() => {
    clock = new FakeClock();
    store = createPairingStore(folder, clock);
  });

  it("pairs the sender of the right code, and a used code never works twice", async () => {
    const { code, expiresAt } = await store.newCode();
    assert.match(code, /^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$/);
    assert.equal(expiresAt, clock.now() + 10 * MINUTE);
    clock.advance(MINUTE);

    const first = await store.redeem(code, { ...alice, is_bot: false } as typeof alice);
    assert.deepEqual(first, { ok: true, user: { ...alice, paired_at: clock.now() } });
    assert.ok(store.isPaired(4242));
    assert.deepEqual(store.users(), [{ ...alice, paired_at: clock.now() }]);
    assert.deepEqual(await store.status(), { state: "paired", expiresAt, pairedUser: { ...alice, paired_at: clock.now() }, wrongAttempts: [] });

    const second = await store.redeem(code, mallory);
    assert.equal(second.ok, false);
    assert.equal(!second.ok && second.problem, "used");
    assert.ok(!store.isPaired(666));
  });

  it("accepts the code without its dash, in lower case and with stray spaces", async () => {
    for (const spell of [(c: string) => c.replace("-", ""), (c: string) => c.toLowerCase(), (c: string) => ` ${c.toLowerCase().replace("-", " ")} `]) {
      const { code } = await store.newCode();
      const result = await store.redeem(spell(code), alice);
      assert.equal(result.ok, true, `${spell(code)} is accepted for ${code}`);
    }
  });

  it("counts wrong codes with who sent them and burns the code at the fifth", async () => {
    const { code } = await store.newCode();
    for (let i = 1; i <= 4; i++) {
      clock.advance(1000);
      const result = await store.redeem("AAAA-AAAA", mallory);
      assert.equal(!result.ok && result.problem, "wrong");
      assert.match(!result.ok ? result.message : "", new RegExp(`${5 - i} tr`));
    }
    assert.equal((await store.status()).state, "waiting");
    const fifth = await store.redeem("BBBBBBBB", mallory);
    assert.equal(!fifth.ok && fifth.problem, "locked");
    const right = await store.redeem(code, alice);
    assert.equal(!right.ok && right.problem, "locked", "the right code no longer works either");
    assert.ok(!store.isPaired(4242));

    const status = await store.status();
    assert.equal(status.state, "locked");
    assert.equal(status.wrongAttempts.length, 5);
    assert.deepEqual(status.wrongAttempts[0], { user: mallory, at: clock.now() - 3000 });
  });

  it("does not count /start without a code (the START button) as a wrong attempt", async () => {
    await store.newCode();
    const result = await store.redeem("", mallory);
    assert.equal(!result.ok && result.problem, "wrong");
    assert.deepEqual((await store.status()).wrongAttempts, []);
  });

  it("refuses a code after its 10 minutes", async () => {
    const { code } = await store.newCode();
    clock.advance(10 * MINUTE);
    const result = await store.redeem(code, alice);
    assert.equal(!result.ok && result.problem, "expired");
    assert.match(!result.ok ? result.message : "", /nightshift pair/);
    assert.equal((await store.status()).state, "expired");
    assert.ok(!store.isPaired(4242));
  });

  it("replaces the earlier code with a new one", async () => {
    const old = await store.newCode();
    const fresh = await store.newCode();
    assert.notEqual(old.code, fresh.code);
    const result = await store.redeem(old.code, alice);
    assert.equal(!result.ok && result.problem, "wrong");
    assert.equal((await store.redeem(fresh.code, alice)).ok, true);
  });

  it("has no code before nightshift pair, or when pairing.json is damaged", async () => {
    assert.deepEqual(await store.status(), { state: "none", wrongAttempts: [] });
    assert.equal((await store.redeem("AAAA-AAAA", alice) as { problem: string }).problem, "none");
    await store.newCode();
    writeFileSync(join(folder, "pairing.json"), "{ half a fi");
    assert.deepEqual(await store.status(), { state: "none", wrongAttempts: [] });
    assert.equal((await store.redeem("AAAA-AAAA", alice) as { problem: string }).problem, "none");
  });

  it("refuses to read a damaged users.json, naming the file and the fix, instead of dropping users", async () => {
    const { code } = await store.newCode();
    await store.redeem(code, alice);
    writeFileSync(join(folder, "users.json"), '{"users": [{"id": "4242"}]}');
    const named = (error: Error) => error.message.includes(join(folder, "users.json")) && /nightshift pair/.test(error.message);
    assert.throws(() => store.users(), named);
    assert.throws(() => store.isPaired(4242), named);
    writeFileSync(join(folder, "users.json"), "not json");
    assert.throws(() => store.isPaired(4242), named);
  });

  it("keeps its files private and stores only a salted scrypt hash of the code, no fast hash", async () => {
    const { code } = await store.newCode();
    assertOnlySlowHash(readFileSync(join(folder, "pairing.json"), "utf8"), code);
    await store.redeem(code, alice);
    assert.equal(statSync(folder).mode & 0o777, 0o700);
    for (const file of ["pairing.json", "users.json"]) assert.equal(statSync(join(folder, file)).mode & 0o777, 0o600, file);
    const salt = () => JSON.parse(readFileSync(join(folder, "pairing.json"), "utf8")).salt as string;
    const first = salt();
    assertOnlySlowHash(readFileSync(join(folder, "pairing.json"), "utf8"), code);
    await store.newCode();
    assert.notEqual(salt(), first, "each code its own salt");
  });

  it("treats a code kept the old way (an unsalted SHA-256) as no code", async () => {
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, "pairing.json"), JSON.stringify(oldRecord("K7P2-MX4Q", clock.now() + 10 * MINUTE)));
    assert.deepEqual(await store.status(), { state: "none", wrongAttempts: [] });
    const result = await store.redeem("K7P2-MX4Q", alice);
    assert.equal(!result.ok && result.problem, "none");
    assert.match(!result.ok ? result.message : "", /run `nightshift pair`/);
    assert.ok(!store.isPaired(alice.id));
  });

  it("counts wrong codes sent at once each, and lets one of two senders of the right code pair", async () => {
    const { code } = await store.newCode();
    const wrongs = await Promise.all(Array.from({ length: 3 }, () => store.redeem("AAAA-AAAA", mallory)));
    assert.deepEqual(wrongs.map((result) => !result.ok && result.problem), ["wrong", "wrong", "wrong"]);
    assert.equal((await store.status()).wrongAttempts.length, 3, "none lost to another at the same moment");
    const rights = await Promise.all([store.redeem(code, alice), store.redeem(code, { id: 5151, username: "bob" })]);
    assert.equal(rights.filter((result) => result.ok).length, 1, JSON.stringify(rights));
    assert.equal(store.users().length, 1);
  });

  it("unpairs a user, and pairing again replaces the earlier entry", async () => {
    await store.redeem((await store.newCode()).code, alice);
    clock.advance(MINUTE);
    await store.redeem((await store.newCode()).code, { ...alice, username: "alice2" });
    assert.deepEqual(store.users(), [{ ...alice, username: "alice2", paired_at: clock.now() }]);
    assert.equal(store.remove(4242), true);
    assert.equal(store.remove(4242), false);
    assert.ok(!store.isPaired(4242));
  });

  it("sees what another process wrote: the code from nightshift pair, the user from the daemon", async () => {
    const cli = createPairingStore(folder, clock);
    const daemon = createPairingStore(folder, clock);
    const { code } = await cli.newCode();
    assert.equal((await daemon.redeem(code, alice)).ok, true);
    assert.equal((await cli.status()).state, "paired");
    assert.ok(cli.isPaired(4242));
  });
});

describe("nightshift pair, waiting (in process)", () => {
  let api: BotApi;
  before(async () => {
    api = await startBotApi({ token: TOKEN, botUsername: "night_bot" });
  });
  after(() => api.close());

  /** Runs pairCommand with a fake clock; `onSleep(n)` runs before the nth poll's sleep returns. */
  async function pair(onSleep: (n: number, store: PairingStore, code: string) => unknown, signal = new AbortController().signal) {
    const fake = new FakeClock();
    let n = 0;
    let out = "";
    const store = createPairingStore(folder, fake);
    const clock: Clock = {
      now: fake.now,
      setTimer: fake.setTimer,
      sleep: async (ms, sleepSignal) => {
        await fake.sleep(ms, sleepSignal);
        await onSleep(++n, store, /Pairing code: (\S+)/.exec(out)?.[1] ?? "");
      },
    };
    const stdout = new Writable({ write: (chunk, _encoding, done) => ((out += chunk), done()) });
    const loaded = loadConfig({ NIGHTSHIFT_HOME: home, TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: api.url });
    const code = await pairCommand({ wait: true }, { home: loaded.home, env: loaded.env, clock, stdout, signal, allowedUsers: [] });
    return { code, out, sleeps: n };
  }

  it("reports each wrong attempt as it happens, then who paired", async () => {
    const result = await pair(async (n, store, code) => {
      if (n === 2) await store.redeem("WRON-GCOD", mallory);
      if (n === 4) await store.redeem("AAAA-AAAA", { id: 7, first_name: "Eve\u001b[31m" });
      if (n === 6) await store.redeem(code, alice);
    });
    assert.equal(result.code, 0);
    assert.match(result.out, /someone \(@mallory, id 666\) tried a wrong code\n/);
    assert.match(result.out, /someone \(Eve\?\[31m, id 7\) tried a wrong code\n/, "escape sequences from a stranger's name are not printed");
    assert.match(result.out, /Paired with @alice \(id 4242\)\. Send the bot a task\.\n$/);
    assert.equal(result.out.match(/tried a wrong code/g)?.length, 2, "each attempt once");
  });

  it("exits 1 when the code expires unused", async () => {
    const result = await pair(() => {});
    assert.equal(result.code, 1);
    assert.match(result.out, /The code expired; run nightshift pair for a new one\.\n$/);
    assert.equal(result.sleeps, 10 * MINUTE / 500);
  });

  it("exits 1 when wrong codes burn it, or a newer nightshift pair replaces it", async () => {
    const locked = await pair(async (n, store) => {
      if (n === 1) for (let i = 0; i < 5; i++) await store.redeem("AAAA-AAAA", mallory);
    });
    assert.equal(locked.code, 1);
    assert.match(locked.out, /Too many wrong codes/);
    const replaced = await pair(async (n, store) => n === 1 && (await store.newCode()));
    assert.equal(replaced.code, 1);
    assert.match(replaced.out, /replaced this code/);
  });

  it("stops waiting on Ctrl-C and says until when the code stays valid", async () => {
    const controller = new AbortController();
    const result = await pair((n) => n === 3 && controller.abort(new Error("Ctrl-C")), controller.signal);
    assert.equal(result.code, 0);
    const until = /expires in 10 minutes, at (\d\d:\d\d)/.exec(result.out)?.[1];
    assert.ok(until);
    assert.match(result.out, new RegExp(`Stopped waiting; the code stays valid until ${until}\\.\\n$`));
  });
});

describe("nightshift pair (the command)", () => {
  let api: BotApi;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    api = await startBotApi({ token: TOKEN, botUsername: "night_bot" });
  });
  after(() => api.close());
  beforeEach(() => {
    const { TELEGRAM_BOT_TOKEN: _t, TELEGRAM_API_ROOT: _r, ...rest } = process.env;
    env = { ...rest, NIGHTSHIFT_HOME: home };
  });

  it("without a bot token exits 2 with the way to get one", async () => {
    const result = await nightshift(["pair", "--no-wait"], env);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /TELEGRAM_BOT_TOKEN is not set/);
    assert.match(result.stderr, /@BotFather/);
    assert.ok(result.stderr.includes(join(home, ".env")), "names the .env file");
    assert.match(result.stderr, /nightshift start/);
    assert.ok(!existsSync(join(folder, "pairing.json")), "no code was made");
  });

  it("prints a code the bot will accept, naming the bot from getMe, and never the token", async () => {
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, ".env"), `TELEGRAM_BOT_TOKEN=${TOKEN}\n`);
    const result = await nightshift(["pair", "--no-wait"], { ...env, TELEGRAM_API_ROOT: api.url });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(api.callsOf("getMe").length, 1);
    const code = /Pairing code: (\w{4}-\w{4})/.exec(result.stdout)?.[1];
    assert.ok(code, result.stdout);
    assert.ok(result.stdout.includes(`Send /start ${code} to @night_bot on Telegram (https://t.me/night_bot)`), result.stdout);
    assert.match(result.stdout, /works once and expires in 10 minutes, at \d\d:\d\d\./);
    assert.match(result.stdout, /No daemon is running: `nightshift start` must be running/);
    assert.ok(!(result.stdout + result.stderr).includes(TOKEN), "the token is not printed");
    assert.equal((await createPairingStore(folder, systemClock).redeem(code, alice)).ok, true);
  });

  it("with the shared store unreachable exits 2 naming the setting and what to do, never the URL", async () => {
    const url = "postgres://nightshift:pairing-db-secret@127.0.0.1:1/nightshift";
    const result = await nightshift(["pair", "--no-wait"], { ...env, TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: api.url, NIGHTSHIFT_DATABASE_URL: url });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /could not reach the shared store \(NIGHTSHIFT_DATABASE_URL\) to make a pairing code/);
    assert.match(result.stderr, /check that PostgreSQL runs/);
    assert.doesNotMatch(result.stdout, /Pairing code/, "no code is printed that no bot could see");
    assert.ok(!(result.stdout + result.stderr).includes("pairing-db-secret"), "the database password is not printed");
    assert.ok(!existsSync(join(folder, "pairing.json")), "no code was made on the side");
  });

  it("says 'your bot' when getMe fails", async () => {
    const result = await nightshift(["pair", "--no-wait"], { ...env, TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: "http://127.0.0.1:1" });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /Send \/start \w{4}-\w{4} to your bot on Telegram\./);
    assert.ok(!(result.stdout + result.stderr).includes(TOKEN));
  });

  it("lists paired and configured users, and removes one", async () => {
    const store = createPairingStore(folder, systemClock);
    await store.redeem((await store.newCode()).code, alice);
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, "config.yaml"), "telegram:\n  allowed_users: [777]\n");

    const list = await nightshift(["pair", "--list"], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /4242 {2}@alice {2}paired \d{4}-\d\d-\d\d \d\d:\d\d/);
    assert.match(list.stdout, /telegram\.allowed_users[^\n]*\n {2}id 777/);

    const removed = await nightshift(["pair", "--remove", "4242"], env);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /Unpaired 4242/);
    assert.ok(!store.isPaired(4242));

    const unknown = await nightshift(["pair", "--remove", "4242"], env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /4242 is not a paired user; nightshift pair --list/);
    const garbage = await nightshift(["pair", "--remove", "@alice"], env);
    assert.equal(garbage.code, 2);
    assert.match(garbage.stderr, /numeric Telegram user id/);
  });

  it("waits for the code, reports a wrong attempt, and exits 0 once the daemon pairs someone", async () => {
    const child = spawn(process.execPath, [CLI, "pair"], { env: { ...env, TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: api.url }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    try {
      await until(() => stdout.includes("Waiting"), "the code to be printed");
      const code = /Pairing code: (\S+)/.exec(stdout)![1]!;
      const daemon = createPairingStore(folder, systemClock);
      assert.equal((await daemon.redeem("AAAA-AAAA", mallory)).ok, false);
      await until(() => stdout.includes("tried a wrong code"), "the wrong attempt to be reported");
      assert.equal((await daemon.redeem(code.toLowerCase(), alice)).ok, true);
      assert.equal(await exited, 0, stderr);
      assert.match(stdout, /someone \(@mallory, id 666\) tried a wrong code\n/);
      assert.match(stdout, /Paired with @alice \(id 4242\)\. Send the bot a task\.\n$/);
    } finally {
      child.kill();
    }
  });
});
