import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Bot, GrammyError, HttpError, InputFile } from 'grammy';
import { startBotApi, parseHtml } from './support/bot-api.ts';
import type { BotApi } from './support/bot-api.ts';

const TOKEN = '987654:TEST-token_abc';
const USER = { id: 4242, username: 'alice' };

let api: BotApi;
const bots: Bot[] = [];

function makeBot(token = TOKEN): Bot {
  const bot = new Bot(token, { client: { apiRoot: api.url } });
  bot.catch((err) => {
    throw err.error;
  });
  bots.push(bot);
  return bot;
}

/** starts long polling with a 1 s poll timeout; resolves once polling has begun */
function startBot(bot: Bot): Promise<void> {
  return new Promise((resolve, reject) => {
    bot.start({ drop_pending_updates: false, timeout: 1, onStart: () => resolve() }).catch(reject);
  });
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

before(async () => {
  api = await startBotApi({ token: TOKEN, botUsername: 'night_bot' });
});
after(async () => {
  await api.close();
});
beforeEach(() => {
  api.calls.length = 0;
});
afterEach(async () => {
  api.up();
  api.releasePolls();
  for (const bot of bots.splice(0)) if (bot.isRunning()) await bot.stop();
});

test('getMe and deleteWebhook come first; long polling delivers a pushed text message at once', async () => {
  const bot = makeBot();
  const got = deferred<{ text: string; from: number; chat: number }>();
  bot.on('message:text', (ctx) => got.resolve({ text: ctx.message.text, from: ctx.from.id, chat: ctx.chat.id }));
  await startBot(bot);
  assert.equal(bot.botInfo.username, 'night_bot');
  assert.equal(bot.botInfo.id, 987654);
  await api.waitFor(() => api.openPolls() === 1);
  const started = Date.now();
  const updateId = api.sendText(USER, 'hello there');
  assert.deepEqual(await got.promise, { text: 'hello there', from: USER.id, chat: USER.id });
  assert.ok(Date.now() - started < 500, 'the waiting long poll answered at once');
  assert.equal(updateId, 1);
  const methods = api.calls.map((c) => c.method);
  assert.deepEqual(methods.slice(0, 3), ['getMe', 'deleteWebhook', 'getUpdates']);
  assert.equal(api.calls[0]!.token, TOKEN);
  assert.equal(api.calls[0]!.httpMethod, 'POST');
  assert.equal(api.callsOf('getUpdates')[0]!.params['timeout'], 1);
});

test('an empty long poll is held for its timeout, then answered with []', async () => {
  const started = Date.now();
  const updates = await new Bot(TOKEN, { client: { apiRoot: api.url } }).api.getUpdates({ timeout: 1, offset: 1_000_000 });
  const elapsed = Date.now() - started;
  assert.deepEqual(updates, []);
  assert.ok(elapsed >= 950 && elapsed < 1500, `held ${elapsed} ms`);
});

test('a confirmed offset is not delivered again across a bot restart; unconfirmed ones stay pending', async () => {
  const seen: string[] = [];
  const first = makeBot();
  const twoSeen = deferred<void>();
  first.on('message:text', (ctx) => {
    seen.push(ctx.message.text);
    if (seen.length === 2) twoSeen.resolve();
  });
  await startBot(first);
  api.sendText(USER, 'one');
  api.sendText(USER, 'two');
  await twoSeen.promise;
  await first.stop(); // confirms the offset with a last getUpdates
  assert.equal(api.pendingUpdates().length, 0);
  const last = api.callsOf('getUpdates').at(-1)!;
  assert.equal(last.params['limit'], 1);

  api.sendText(USER, 'three'); // arrives while no bot runs
  const second = makeBot();
  const threeSeen = deferred<void>();
  second.on('message:text', (ctx) => {
    seen.push(ctx.message.text);
    threeSeen.resolve();
  });
  await startBot(second);
  await threeSeen.promise;
  await second.stop();
  assert.deepEqual(seen, ['one', 'two', 'three']);

  // raw offsets: an unconfirmed update is delivered again; offset past it drops it
  const client = new Bot(TOKEN, { client: { apiRoot: api.url } }).api;
  const id = api.sendText(USER, 'four');
  assert.deepEqual((await client.getUpdates({ timeout: 0 })).map((u) => u.update_id), [id]);
  assert.deepEqual((await client.getUpdates({ timeout: 0 })).map((u) => u.update_id), [id]);
  assert.deepEqual(await client.getUpdates({ offset: id + 1, timeout: 0 }), []);
  assert.equal(api.pendingUpdates().length, 0);
});

test('limit caps a batch; deleteWebhook with drop_pending_updates drops the queue', async () => {
  const client = new Bot(TOKEN, { client: { apiRoot: api.url } }).api;
  const ids = [api.sendText(USER, 'a'), api.sendText(USER, 'b'), api.sendText(USER, 'c')];
  const batch = await client.getUpdates({ limit: 2, timeout: 0 });
  assert.deepEqual(batch.map((u) => u.update_id), ids.slice(0, 2));
  await client.deleteWebhook({ drop_pending_updates: true });
  assert.deepEqual(await client.getUpdates({ timeout: 0 }), []);
});

test('a second concurrent getUpdates terminates the first with 409 Conflict', async () => {
  const client = new Bot(TOKEN, { client: { apiRoot: api.url } }).api;
  const firstPoll = client.getUpdates({ timeout: 2, offset: 1_000_000 }).then(
    () => assert.fail('should conflict'),
    (error: unknown) => error,
  );
  await api.waitFor(() => api.openPolls() === 1);
  const secondPoll = client.getUpdates({ timeout: 0, offset: 1_000_000 });
  const error = await firstPoll;
  assert.ok(error instanceof GrammyError);
  assert.equal(error.error_code, 409);
  assert.match(error.description, /^Conflict: terminated by other getUpdates request/);
  assert.deepEqual(await secondPoll, []);
});

test('sendMessage / editMessageText round trip; "not modified" surfaces as GrammyError 400', async () => {
  const bot = makeBot();
  const chatId = USER.id;
  api.sendText(USER, 'hi'); // a user message shares the chat's message_id sequence (stays pending: no bot polls here)
  const sent = await bot.api.sendMessage(chatId, 'Working…', {
    reply_markup: { inline_keyboard: [[{ text: 'Cancel', callback_data: 'cancel:1' }]] },
  });
  assert.equal(sent.chat.id, chatId);
  assert.equal(sent.text, 'Working…');
  assert.equal(typeof sent.date, 'number');
  const next = await bot.api.sendMessage(chatId, 'second');
  assert.equal(next.message_id, sent.message_id + 1, 'message ids increase per chat');
  const other = await bot.api.sendMessage(777, 'elsewhere');
  assert.equal(other.message_id, 1, 'another chat has its own counter');

  const edited = await bot.api.editMessageText(chatId, sent.message_id, 'Step 2 of 3', {
    reply_markup: { inline_keyboard: [[{ text: 'Cancel', callback_data: 'cancel:1' }]] },
  });
  assert.equal(typeof edited === 'object' && 'text' in edited && edited.text, 'Step 2 of 3');
  const view = api.messages(chatId);
  const shown = view.find((m) => m.message_id === sent.message_id)!;
  assert.equal(shown.text, 'Step 2 of 3');
  assert.equal(shown.edits, 1);
  assert.deepEqual(shown.reply_markup, { inline_keyboard: [[{ text: 'Cancel', callback_data: 'cancel:1' }]] });

  await assert.rejects(
    bot.api.editMessageText(chatId, sent.message_id, 'Step 2 of 3', {
      reply_markup: { inline_keyboard: [[{ text: 'Cancel', callback_data: 'cancel:1' }]] },
    }),
    (error: unknown) => {
      assert.ok(error instanceof GrammyError);
      assert.equal(error.error_code, 400);
      assert.equal(
        error.description,
        'Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message',
      );
      return true;
    },
  );
  // same text, markup removed: that is a modification
  await bot.api.editMessageText(chatId, sent.message_id, 'Step 2 of 3');
  assert.equal(api.messages(chatId).find((m) => m.message_id === sent.message_id)!.reply_markup, undefined);

  // editMessageReplyMarkup
  await bot.api.editMessageReplyMarkup(chatId, sent.message_id, { reply_markup: { inline_keyboard: [[{ text: 'Done', callback_data: 'x' }]] } });
  assert.equal(api.messages(chatId).find((m) => m.message_id === sent.message_id)!.reply_markup!.inline_keyboard[0]![0]!.text, 'Done');
  await assert.rejects(
    bot.api.editMessageReplyMarkup(chatId, sent.message_id, { reply_markup: { inline_keyboard: [[{ text: 'Done', callback_data: 'x' }]] } }),
    /message is not modified/,
  );

  await assert.rejects(bot.api.editMessageText(chatId, 99_999, 'x'), /Bad Request: message to edit not found/);
  const userMessageId = api.pendingUpdates().at(-1)!.message!.message_id;
  await assert.rejects(bot.api.editMessageText(chatId, userMessageId, 'x'), /Bad Request: message can't be edited/);
  await assert.rejects(bot.api.sendMessage(chatId, '   '), /Bad Request: message text is empty/);
  await assert.rejects(bot.api.sendMessage(chatId, 'x', { reply_parameters: { message_id: 99_999 } }), /message to be replied not found/);
  await assert.rejects(
    bot.api.sendMessage(chatId, 'x', { reply_markup: { inline_keyboard: [[{ text: 'b', callback_data: 'x'.repeat(65) }]] } }),
    /BUTTON_DATA_INVALID/,
  );
  const sentTexts = api.messages(chatId).map((m) => m.text);
  assert.ok(!sentTexts.includes('hi'), 'messages() shows the bot\'s messages only');
});

test('HTML parse_mode: entities parsed; bad HTML rejected like Telegram; length counted after parsing', async () => {
  const bot = makeBot();
  const ok = await bot.api.sendMessage(USER.id, '<b>Done</b> in <code>2 s</code> &amp; <pre><code class="language-ts">let a = 1 &lt; 2;</code></pre>', {
    parse_mode: 'HTML',
  });
  assert.equal(ok.text, 'Done in 2 s & let a = 1 < 2;');
  assert.deepEqual(ok.entities, [
    { type: 'bold', offset: 0, length: 4 },
    { type: 'code', offset: 8, length: 3 },
    { type: 'pre', offset: 14, length: 14, language: 'ts' },
  ]);
  const stored = api.messages(USER.id).find((m) => m.message_id === ok.message_id)!;
  assert.match(stored.raw!, /<pre><code class="language-ts">/);

  const cases: [string, string][] = [
    ['<b>open', "Can't find end tag corresponding to start tag \"b\""],
    ['<foo>x</foo>', 'Unsupported start tag "foo" at byte offset 0'],
    ['a <b>x</i></b>', 'Unmatched end tag at byte offset 6, expected "</b>", found "</i>"'],
    ['x </b>', 'Unexpected end tag at byte offset 2'],
    ['1 < 2', 'Unsupported start tag "" at byte offset 2'],
    ['é <b', 'Unclosed start tag at byte offset 3'],
  ];
  for (const [html, reason] of cases) {
    await assert.rejects(bot.api.sendMessage(USER.id, html, { parse_mode: 'HTML' }), (error: unknown) => {
      assert.ok(error instanceof GrammyError, html);
      assert.equal(error.error_code, 400);
      assert.equal(error.description, `Bad Request: can't parse entities: ${reason}`, html);
      return true;
    });
  }
  // the same text without parse_mode is fine
  await bot.api.sendMessage(USER.id, '1 < 2 <b>');

  await assert.rejects(bot.api.sendMessage(USER.id, 'x'.repeat(4097)), /Bad Request: message is too long/);
  await bot.api.sendMessage(USER.id, 'x'.repeat(4096));
  await bot.api.sendMessage(USER.id, `<b>${'x'.repeat(4096)}</b>`, { parse_mode: 'HTML' }); // tags don't count
  assert.deepEqual(parseHtml('<a href="https://x.y/?a=1&amp;b=2">link</a>').entities, [
    { type: 'text_link', offset: 0, length: 4, url: 'https://x.y/?a=1&b=2' },
  ]);
});

test('failNext: a 429 carries retry_after to GrammyError.parameters; "*" fails any method; counts run out', async () => {
  const bot = makeBot();
  api.failNext('sendMessage', 1, { status: 429, description: 'Too Many Requests: retry after 7', retry_after: 7 });
  await assert.rejects(bot.api.sendMessage(USER.id, 'a'), (error: unknown) => {
    assert.ok(error instanceof GrammyError);
    assert.equal(error.error_code, 429);
    assert.equal(error.description, 'Too Many Requests: retry after 7');
    assert.equal(error.parameters.retry_after, 7);
    return true;
  });
  await bot.api.sendMessage(USER.id, 'a'); // only one failure was scripted
  api.failNext('*', 2, { status: 500, description: 'Internal Server Error' });
  await assert.rejects(bot.api.getMe(), (e: unknown) => e instanceof GrammyError && e.error_code === 500);
  await assert.rejects(bot.api.sendChatAction(USER.id, 'typing'), (e: unknown) => e instanceof GrammyError && e.error_code === 500);
  assert.equal(await bot.api.sendChatAction(USER.id, 'typing'), true);
  assert.deepEqual(api.calls.map((c) => c.status), [429, 200, 500, 500, 200]);
  assert.equal(api.calls[0]!.response.parameters.retry_after, 7);
});

test('sendDocument uploads multipart; filename and content are recorded and shown in the chat', async () => {
  const bot = makeBot();
  const content = '# Result\n\n```ts\nconst x = 1;\n```\n' + 'é'.repeat(3000);
  const message = await bot.api.sendDocument(USER.id, new InputFile(Buffer.from(content), 'result.md'), {
    caption: '<b>Full answer</b>',
    parse_mode: 'HTML',
  });
  assert.equal(message.document?.file_name, 'result.md');
  assert.equal(message.document?.file_size, Buffer.byteLength(content));
  assert.equal(message.caption, 'Full answer');
  const call = api.callsOf('sendDocument')[0]!;
  assert.equal(call.params['chat_id'], USER.id);
  assert.match(String(call.params['document']), /^attach:\/\//);
  const file = Object.values(call.files)[0]!;
  assert.equal(file.filename, 'result.md');
  assert.equal(file.content.toString('utf8'), content);
  const shown = api.messages(USER.id).at(-1)!;
  assert.equal(shown.document?.filename, 'result.md');
  assert.equal(shown.document?.content.toString('utf8'), content);
  assert.equal(shown.text, 'Full answer');
  await assert.rejects(
    bot.api.sendDocument(USER.id, new InputFile(Buffer.from('x'), 'a.txt'), { caption: 'c'.repeat(1025) }),
    /message caption is too long/,
  );
});

test('a user-sent document can be fetched with getFile and the file route', async () => {
  const bot = makeBot();
  const got = deferred<string>();
  bot.on('message:document', async (ctx) => {
    const file = await ctx.getFile();
    const response = await fetch(`${api.url}/file/bot${TOKEN}/${file.file_path}`);
    got.resolve(`${ctx.message.document.file_name}|${ctx.message.caption}|${await response.text()}`);
  });
  await startBot(bot);
  api.sendDocumentFromUser(USER, { filename: 'data.csv', content: 'a,b\n1,2\n', caption: 'analyse this' });
  assert.equal(await got.promise, 'data.csv|analyse this|a,b\n1,2\n');
});

test('a button press reaches a callbackQuery handler; answerCallbackQuery is recorded; a second answer is refused', async () => {
  const bot = makeBot();
  const sent = await bot.api.sendMessage(USER.id, 'Run `rm -rf build`?', {
    reply_markup: { inline_keyboard: [[{ text: 'Allow once', callback_data: 'appr:7:once' }, { text: 'Deny', callback_data: 'appr:7:deny' }]] },
  });
  const pressed = deferred<{ data: string; messageId: number | undefined; from: number }>();
  bot.callbackQuery(/^appr:(\d+):(\w+)$/, async (ctx) => {
    await ctx.answerCallbackQuery({ text: 'Allowed once' });
    await ctx.editMessageText('Allowed once by @alice');
    pressed.resolve({ data: ctx.callbackQuery.data, messageId: ctx.callbackQuery.message?.message_id, from: ctx.from.id });
  });
  await startBot(bot);
  api.pressButton(USER, sent.message_id, 'appr:7:once');
  assert.deepEqual(await pressed.promise, { data: 'appr:7:once', messageId: sent.message_id, from: USER.id });
  const answer = api.callsOf('answerCallbackQuery')[0]!;
  assert.equal(answer.params['text'], 'Allowed once');
  assert.deepEqual([...api.answeredCallbacks.values()].at(-1), { text: 'Allowed once' });
  const shown = api.messages(USER.id).find((m) => m.message_id === sent.message_id)!;
  assert.equal(shown.text, 'Allowed once by @alice');
  assert.equal(shown.reply_markup, undefined, 'editMessageText without markup removes the buttons');
  await assert.rejects(
    bot.api.answerCallbackQuery(String(answer.params['callback_query_id'])),
    /query is too old and response timeout expired or query ID is invalid/,
  );
});

test('setMyCommands is validated and stored', async () => {
  const bot = makeBot();
  await bot.api.setMyCommands([
    { command: 'tasks', description: 'List tasks' },
    { command: 'status', description: 'Status of a task' },
  ]);
  assert.deepEqual(api.commands.map((c) => c.command), ['tasks', 'status']);
  assert.deepEqual((await bot.api.getMyCommands()).map((c) => c.command), ['tasks', 'status']);
  await assert.rejects(bot.api.setMyCommands([{ command: 'Bad-Name', description: 'x' }]), /BOT_COMMAND_INVALID/);
});

test('a wrong token gets 401 Unauthorized; an unknown method 404 Not Found; GET and form bodies work', async () => {
  const wrong = new Bot('1:WRONG', { client: { apiRoot: api.url } });
  await assert.rejects(wrong.api.getMe(), (error: unknown) => {
    assert.ok(error instanceof GrammyError);
    assert.equal(error.error_code, 401);
    assert.equal(error.description, 'Unauthorized');
    return true;
  });
  await assert.rejects(wrong.start(), (e: unknown) => e instanceof GrammyError && e.error_code === 401);
  assert.equal(api.calls[0]!.token, '1:WRONG');

  const unknown = await fetch(`${api.url}/bot${TOKEN}/frobnicate`, { method: 'POST' });
  assert.equal(unknown.status, 404);
  assert.deepEqual(await unknown.json(), { ok: false, error_code: 404, description: 'Not Found' });

  const viaGet = await fetch(`${api.url}/bot${TOKEN}/sendMessage?chat_id=${USER.id}&text=from%20GET`);
  const body = (await viaGet.json()) as { ok: boolean; result: { text: string } };
  assert.equal(body.result.text, 'from GET');
  const viaForm = await fetch(`${api.url}/bot${TOKEN}/sendMessage`, {
    method: 'POST',
    body: new URLSearchParams({ chat_id: String(USER.id), text: 'form' }),
  });
  assert.equal(((await viaForm.json()) as { result: { text: string } }).result.text, 'form');
});

test('a stalled poll holds until released; held polls then answer with what arrived', async () => {
  const bot = makeBot();
  const got = deferred<string>();
  bot.on('message:text', (ctx) => got.resolve(ctx.message.text));
  api.stallPolls();
  await startBot(bot);
  await api.waitFor(() => api.openPolls() === 1);
  api.sendText(USER, 'during the stall');
  let delivered = false;
  void got.promise.then(() => (delivered = true));
  await new Promise((r) => setTimeout(r, 1300)); // longer than the 1 s poll timeout
  assert.equal(delivered, false, 'nothing answered while stalled');
  const poll = api.callsOf('getUpdates')[0]!;
  assert.equal(poll.status, undefined, 'the poll is still open');
  api.releasePolls();
  assert.equal(await got.promise, 'during the stall');
  assert.equal(poll.status, 200);
});

test('down("502") answers Bad Gateway; down() destroys sockets; up() restores', async () => {
  const client = new Bot(TOKEN, { client: { apiRoot: api.url } }).api;
  api.down('502');
  await assert.rejects(client.getMe(), (e: unknown) => e instanceof GrammyError && e.error_code === 502 && e.description === 'Bad Gateway');
  api.down();
  await assert.rejects(client.getMe(), (e: unknown) => e instanceof HttpError);
  assert.deepEqual(api.calls.map((c) => c.status), [502, 0]);
  api.up();
  assert.equal((await client.getMe()).id, 987654);

  // a poll waiting when the outage begins fails too
  const waiting = client.getUpdates({ timeout: 2, offset: 1_000_000 }).then(
    () => 'answered',
    (e: unknown) => (e instanceof HttpError ? 'network error' : String(e)),
  );
  await api.waitFor(() => api.openPolls() === 1);
  api.down();
  assert.equal(await waiting, 'network error');
});
