import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { startMessagesApi } from './support/messages-api.ts';
import type { MessagesApi } from './support/messages-api.ts';

const MODEL = 'claude-sonnet-4-6';
const hello = [{ role: 'user' as const, content: 'Hello' }];

let api: MessagesApi;
let client: Anthropic;

before(async () => {
  api = await startMessagesApi();
  client = new Anthropic({ baseURL: api.url, apiKey: 'test-key', maxRetries: 0 });
});
after(async () => {
  await api.close();
});
beforeEach(() => {
  api.requests.length = 0;
  api.respondWith(() => ({ content: [{ type: 'text', text: 'default' }] }));
});

test('JSON text reply with given and default usage', async () => {
  api.script(
    { content: [{ type: 'text', text: 'Hi there' }], usage: { input_tokens: 12, output_tokens: 3, cache_read_input_tokens: 5 } },
    { content: [{ type: 'text', text: '12345678' }] },
  );
  const message = await client.messages.create({ model: MODEL, max_tokens: 100, messages: hello });
  assert.match(message.id, /^msg_/);
  assert.equal(message.type, 'message');
  assert.equal(message.role, 'assistant');
  assert.equal(message.model, MODEL);
  assert.deepEqual(message.content, [{ type: 'text', text: 'Hi there' }]);
  assert.equal(message.stop_reason, 'end_turn');
  assert.equal(message.stop_sequence, null);
  assert.equal(message.usage.input_tokens, 12);
  assert.equal(message.usage.output_tokens, 3);
  assert.equal(message.usage.cache_read_input_tokens, 5);
  assert.equal(message.usage.cache_creation_input_tokens, 0);

  const second = await client.messages.create({ model: MODEL, max_tokens: 100, messages: hello });
  assert.equal(second.usage.input_tokens, Math.ceil(api.requests[1]!.rawBody.length / 4));
  assert.equal(second.usage.output_tokens, 2);
  assert.equal(second.usage.cache_read_input_tokens, 0);
});

test('streamed tool_use reply: finalMessage has parsed input, SDK stream events fire', async () => {
  api.script({
    content: [
      { type: 'text', text: 'Let me look that up for you.' },
      { type: 'tool_use', name: 'search', input: { query: 'weather in Paris', limit: 3 } },
    ],
  });
  const stream = client.messages.stream({ model: MODEL, max_tokens: 100, messages: hello });
  const deltas: string[] = [];
  const json: string[] = [];
  const eventTypes: string[] = [];
  stream.on('text', (delta) => deltas.push(delta));
  stream.on('inputJson', (partial) => json.push(partial));
  stream.on('streamEvent', (event) => eventTypes.push(event.type));
  const message = await stream.finalMessage();

  assert.ok(deltas.length > 1, 'text arrives in several deltas');
  assert.equal(deltas.join(''), 'Let me look that up for you.');
  assert.ok(json.length > 1, 'tool input arrives in several partial_json chunks');
  assert.equal(message.stop_reason, 'tool_use');
  assert.equal(message.content.length, 2);
  const tool = message.content[1]!;
  assert.equal(tool.type, 'tool_use');
  assert.ok(tool.type === 'tool_use');
  assert.match(tool.id, /^toolu_/);
  assert.equal(tool.name, 'search');
  assert.deepEqual(tool.input, { query: 'weather in Paris', limit: 3 });
  assert.equal(eventTypes[0], 'message_start');
  assert.deepEqual(eventTypes.slice(-2), ['message_delta', 'message_stop']);
  assert.ok(!eventTypes.includes('ping'), 'ping is swallowed by the SDK');
  assert.ok(message.usage.output_tokens > 1, 'message_delta usage replaces the message_start placeholder');
  assert.equal(api.requests[0]!.body.stream, true);
});

test('create({stream:true}) yields raw events in the real order', async () => {
  api.script({ content: [{ type: 'text', text: 'abc' }], stop_reason: 'max_tokens' });
  const stream = await client.messages.create({ model: MODEL, max_tokens: 5, messages: hello, stream: true });
  const types: string[] = [];
  let stop: string | null = null;
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === 'message_delta') stop = event.delta.stop_reason;
  }
  assert.deepEqual(types.filter((t) => t !== 'content_block_delta'), [
    'message_start',
    'content_block_start',
    'content_block_stop',
    'message_delta',
    'message_stop',
  ]);
  assert.ok(types.includes('content_block_delta'));
  assert.equal(stop, 'max_tokens');
});

test('429 with retry-after surfaces as RateLimitError with the header', async () => {
  api.script({ error: { status: 429, type: 'rate_limit_error', message: 'slow down', retryAfter: 7 } });
  await assert.rejects(client.messages.create({ model: MODEL, max_tokens: 100, messages: hello }), (error: unknown) => {
    assert.ok(error instanceof Anthropic.RateLimitError);
    assert.equal(error.status, 429);
    assert.equal(error.headers.get('retry-after'), '7');
    assert.match(error.requestID ?? '', /^req_/);
    assert.equal(error.type, 'rate_limit_error');
    assert.equal(error.apiMessage, 'slow down');
    return true;
  });
});

test('529 surfaces as OverloadedError (an InternalServerError)', async () => {
  api.script({ error: { status: 529, type: 'overloaded_error', message: 'Overloaded' } });
  await assert.rejects(client.messages.create({ model: MODEL, max_tokens: 100, messages: hello }), (error: unknown) => {
    assert.ok(error instanceof Anthropic.OverloadedError);
    assert.ok(error instanceof Anthropic.InternalServerError);
    assert.equal(error.status, 529);
    assert.equal(error.headers.get('retry-after'), null);
    return true;
  });
});

test('a broken stream makes finalMessage() reject; the server carries on', async () => {
  api.script({ breakStream: true, content: [{ type: 'text', text: 'this will be cut short' }] });
  const stream = client.messages.stream({ model: MODEL, max_tokens: 100, messages: hello });
  const seen: string[] = [];
  stream.on('streamEvent', (event) => seen.push(event.type));
  stream.on('error', () => {}); // finalMessage() below is what we assert on
  // undici reports the cut connection as "terminated"; the SDK wraps it in an AnthropicError
  await assert.rejects(stream.finalMessage(), Anthropic.AnthropicError);
  assert.equal(seen[0], 'message_start');
  assert.ok(!seen.includes('message_stop'));

  api.script({ breakStream: true });
  await assert.rejects(client.messages.create({ model: MODEL, max_tokens: 100, messages: hello }), Anthropic.APIConnectionError);

  const ok = await client.messages.create({ model: MODEL, max_tokens: 100, messages: hello });
  assert.deepEqual(ok.content, [{ type: 'text', text: 'default' }]);
});

test('a stalled request aborted by the client rejects with an abort error; the server survives', async () => {
  api.script({ stall: true });
  const controller = new AbortController();
  const pending = client.messages.create({ model: MODEL, max_tokens: 100, messages: hello }, { signal: controller.signal });
  while (api.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  controller.abort();
  await assert.rejects(pending, Anthropic.APIUserAbortError);
  assert.equal(api.requests.length, 1, 'the stalled request was recorded before any answer');

  const ok = await client.messages.create({ model: MODEL, max_tokens: 100, messages: hello });
  assert.equal(ok.stop_reason, 'end_turn');
});

test('invalid conversations are refused with 400 invalid_request_error', async () => {
  const cases: { messages: any[]; pattern: RegExp }[] = [
    {
      messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_missing', content: 'x' }] }],
      pattern: /unexpected `tool_use_id`.*toolu_missing/,
    },
    {
      messages: [
        { role: 'user', content: 'go' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_a', name: 't', input: {} }] },
        { role: 'user', content: 'no result' },
      ],
      pattern: /without `tool_result`.*toolu_a/,
    },
    { messages: [{ role: 'assistant', content: 'hi' }], pattern: /first message must use the "user" role/ },
    {
      messages: [
        { role: 'user', content: 'a' },
        { role: 'user', content: 'b' },
      ],
      pattern: /roles must alternate/,
    },
    { messages: [], pattern: /at least one message/ },
    {
      messages: [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: [] },
        { role: 'user', content: 'b' },
      ],
      pattern: /non-empty content/,
    },
  ];
  api.script({ content: [{ type: 'text', text: 'kept for the valid request' }] });
  for (const { messages, pattern } of cases) {
    await assert.rejects(client.messages.create({ model: MODEL, max_tokens: 100, messages }), (error: unknown) => {
      assert.ok(error instanceof Anthropic.BadRequestError);
      assert.equal(error.type, 'invalid_request_error');
      assert.match(error.apiMessage ?? '', pattern);
      return true;
    });
  }
  // A valid tool round trip passes, and the refused requests did not consume the scripted reply.
  const ok = await client.messages.create({
    model: MODEL,
    max_tokens: 100,
    messages: [
      { role: 'user', content: 'go' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_a', name: 't', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_a', content: 'done' }, { type: 'text', text: 'next?' }] },
    ],
  });
  assert.deepEqual(ok.content, [{ type: 'text', text: 'kept for the valid request' }]);
});

test('requests are recorded in order with bodies and SDK headers', async () => {
  api.respondWith((request, index) => ({ content: [{ type: 'text', text: `reply ${index} to ${request.body.messages[0].content}` }] }));
  const first = await client.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'one' }] });
  const second = await client.messages.create({ model: MODEL, max_tokens: 20, messages: [{ role: 'user', content: 'two' }] });
  assert.deepEqual(first.content, [{ type: 'text', text: 'reply 0 to one' }]);
  assert.deepEqual(second.content, [{ type: 'text', text: 'reply 1 to two' }]);
  assert.equal(api.requests.length, 2);
  const [a, b] = api.requests;
  assert.equal(a!.method, 'POST');
  assert.equal(a!.path, '/v1/messages');
  assert.equal(a!.body.max_tokens, 10);
  assert.equal(b!.body.max_tokens, 20);
  assert.deepEqual(JSON.parse(b!.rawBody), b!.body);
  assert.ok(a!.at <= b!.at);
  assert.equal(a!.headers['authorization'], 'Bearer test-key'); // SDK 1.12 sends the key as a bearer token
  assert.equal(a!.headers['x-stainless-retry-count'], '0');
  assert.equal(typeof a!.headers['anthropic-version'], 'string');
  assert.equal(a!.headers['content-type'], 'application/json');
});

test('script exhausted without a responder is a 500 saying so', async () => {
  const bare = await startMessagesApi();
  try {
    const c = new Anthropic({ baseURL: bare.url, apiKey: 'test-key', maxRetries: 0 });
    await assert.rejects(c.messages.create({ model: MODEL, max_tokens: 10, messages: hello }), (error: unknown) => {
      assert.ok(error instanceof Anthropic.InternalServerError);
      assert.match(error.apiMessage ?? '', /script exhausted/);
      return true;
    });
  } finally {
    await bare.close();
  }
});

test('beta compaction reply returns a compaction block, JSON and streamed', async () => {
  api.script({ compaction: { content: 'Summary of the chat so far.' } }, { compaction: { content: 'Streamed summary.' } });
  const params = {
    model: MODEL,
    max_tokens: 1000,
    messages: hello,
    compaction: { type: 'summarize' as const },
    betas: ['compact-2026-09-04'],
  };
  const message = await client.beta.messages.create(params);
  assert.equal(message.stop_reason, 'compaction');
  assert.equal(message.content.length, 1);
  const block = message.content[0]!;
  assert.ok(block.type === 'compaction');
  assert.equal(block.content, 'Summary of the chat so far.');
  assert.match(block.encrypted_content ?? '', /^enc-/);
  assert.match(block.signature ?? '', /^sig-/);
  const request = api.requests[0]!;
  assert.equal(request.path, '/v1/messages');
  assert.deepEqual(request.body.compaction, { type: 'summarize' });
  assert.match(String(request.headers['anthropic-beta']), /compact-2026-09-04/);

  const streamed = await client.beta.messages.stream(params).finalMessage();
  assert.equal(streamed.stop_reason, 'compaction');
  const sblock = streamed.content[0]!;
  assert.ok(sblock.type === 'compaction');
  assert.equal(sblock.content, 'Streamed summary.');

  // The compacted conversation (assistant compaction block first) is accepted on the next turn.
  const next = await client.beta.messages.create({
    model: MODEL,
    max_tokens: 100,
    betas: ['compact-2026-09-04'],
    messages: [{ role: 'assistant', content: [block] }, { role: 'user', content: 'carry on' }],
  });
  assert.equal(next.stop_reason, 'end_turn');
});

test('GET /v1/models lists the models seen; unknown paths are 404 with the error envelope', async () => {
  await client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: hello });
  const page = await client.models.list();
  assert.deepEqual(
    page.data.map((m) => m.id),
    ['claude-haiku-4-5'],
  );
  const response = await fetch(`${api.url}/v1/nope`);
  assert.equal(response.status, 404);
  assert.deepEqual(await response.json(), { type: 'error', error: { type: 'not_found_error', message: 'Not found: GET /v1/nope' } });
});

test('delayMs holds the response back', async () => {
  api.script({ content: [{ type: 'text', text: 'late' }], delayMs: 60 });
  const started = Date.now();
  await client.messages.create({ model: MODEL, max_tokens: 10, messages: hello });
  assert.ok(Date.now() - started >= 55);
});

test('close() ends stalled requests', async () => {
  const local = await startMessagesApi({ responder: () => ({ stall: true }) });
  const c = new Anthropic({ baseURL: local.url, apiKey: 'test-key', maxRetries: 0 });
  const pending = c.messages.create({ model: MODEL, max_tokens: 10, messages: hello });
  while (local.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  await local.close();
  await assert.rejects(pending, Anthropic.APIConnectionError);
});
