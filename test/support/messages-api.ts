/**
 * A local stand-in for Anthropic's Messages API, for tests and benchmarks.
 *
 * The real `@anthropic-ai/sdk` client works against it unchanged:
 *
 *   const api = await startMessagesApi();
 *   const client = new Anthropic({ baseURL: api.url, apiKey: 'test-key', maxRetries: 0 });
 *   api.script({ content: [{ type: 'text', text: 'hi' }] });
 *   await client.messages.create({ model: 'claude-sonnet-4-6', max_tokens: 100, messages: [...] });
 *   await api.close();
 *
 * Served routes:
 * - `POST /v1/messages` (query string ignored, so the beta client's `?beta=true` works): JSON or, when the body has
 *   `stream: true`, Server-Sent Events in the real API's event order.
 * - `GET /v1/models` and `GET /v1/models/:id`: the models seen in requests, or a default one.
 * - anything else: 404 with the API's error envelope.
 *
 * Every request to `/v1/messages` is recorded in `requests` before it is answered (even if the client then aborts).
 * The body is validated like the real API does for the things our conversation rebuilding can get wrong (roles,
 * tool_use/tool_result pairing, empty content); a violation is answered with 400 `invalid_request_error` and does
 * not consume a scripted reply.
 *
 * Note that the SDK retries 408/409/429/5xx and connection failures twice by default: build clients with
 * `maxRetries: 0` in tests that expect a failure, or script one reply per attempt.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export type Block =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id?: string; name: string; input: unknown }; // id generated (toolu_...) when absent

export interface Usage {
  input_tokens?: number;
  output_tokens?: number;
  cache_read_input_tokens?: number;
  cache_creation_input_tokens?: number;
}

export type Reply =
  /** stop_reason defaults to 'tool_use' if any tool_use block, else 'end_turn'; `delayMs` replaces `latencyMs` */
  | { content: Block[]; stop_reason?: string; usage?: Usage; delayMs?: number }
  /** JSON error body {type:'error',error:{type,message}}, `retry-after` header (seconds) when given */
  | { error: { status: number; type: string; message: string; retryAfter?: number } }
  /** accept the request and never answer (until the client aborts or the server closes) */
  | { stall: true }
  /** streaming: message_start and a few events, then the socket is destroyed; non-streaming: socket destroyed */
  | { breakStream: true; content?: Block[] }
  /** a compaction response: one `compaction` block, stop_reason 'compaction' */
  | { compaction: { content: string } };

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** the parsed JSON body (null when the body was not valid JSON) */
  body: any;
  rawBody: string;
  /** Date.now() when the body had been received */
  at: number;
}

/** `index` is the request's position in `api.requests` */
export type Responder = (request: RecordedRequest, index: number) => Reply | Promise<Reply>;

export interface MessagesApi {
  /** e.g. http://127.0.0.1:PORT (pass as baseURL) */
  url: string;
  /** every request to /v1/messages, in order */
  requests: RecordedRequest[];
  /** Queue replies answered in order; when the queue is empty the responder is used; with neither, a 500 error reply explaining "script exhausted" */
  script(...replies: Reply[]): void;
  respondWith(responder: Responder): void;
  /** closes all sockets including stalled ones */
  close(): Promise<void>;
}

export const DEFAULT_MODEL = 'claude-sonnet-4-6';

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomId(prefix: string): string {
  const bytes = randomBytes(22);
  let out = prefix + '01';
  for (const byte of bytes) out += BASE62[byte % 62];
  return out;
}

function isObject(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class InvalidRequest extends Error {}

/**
 * The request's `tools`: custom tools with a valid, unique name and an object schema; at least one
 * must not be deferred. Returns the names of the deferred ones (what a `tool_reference` may name).
 */
function validateTools(tools: unknown): { deferred: Set<string> } {
  const deferred = new Set<string>();
  if (tools === undefined) return { deferred };
  if (!Array.isArray(tools)) throw new InvalidRequest('tools: Input should be a valid list');
  const names = new Set<string>();
  tools.forEach((tool, i) => {
    if (!isObject(tool)) throw new InvalidRequest(`tools.${i}: Input should be an object`);
    if (typeof tool.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(tool.name)) {
      throw new InvalidRequest(`tools.${i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`);
    }
    if (!isObject(tool.input_schema) || tool.input_schema.type !== 'object') {
      throw new InvalidRequest(`tools.${i}.custom.input_schema.type: Input should be 'object'`);
    }
    if (names.has(tool.name)) throw new InvalidRequest(`tools: Tool names must be unique, found ${tool.name} twice`);
    names.add(tool.name);
    if (tool.defer_loading === true) deferred.add(tool.name);
  });
  if (tools.length > 0 && deferred.size === tools.length) throw new InvalidRequest('tools: At least one tool must not have defer_loading set to true');
  return { deferred };
}

/** Throws InvalidRequest with a message in the real API's style when the body would be refused. */
function validateBody(body: unknown): void {
  if (!isObject(body)) throw new InvalidRequest('body: Input should be an object');
  if (body.model === undefined) throw new InvalidRequest('model: Field required');
  if (typeof body.model !== 'string' || body.model === '') throw new InvalidRequest('model: Input should be a valid string');
  if (body.max_tokens === undefined) throw new InvalidRequest('max_tokens: Field required');
  if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens)) {
    throw new InvalidRequest('max_tokens: Input should be a valid integer');
  }
  if (body.max_tokens < 1) throw new InvalidRequest('max_tokens: Input should be greater than or equal to 1');
  if (body.stream !== undefined && typeof body.stream !== 'boolean') {
    throw new InvalidRequest('stream: Input should be a valid boolean');
  }
  if (body.messages === undefined) throw new InvalidRequest('messages: Field required');
  if (!Array.isArray(body.messages)) throw new InvalidRequest('messages: Input should be a valid list');
  if (body.messages.length === 0) throw new InvalidRequest('messages: at least one message is required');

  const tools = validateTools(body.tools);
  const messages: unknown[] = body.messages;
  // Normalised view: index in `messages`, role and content blocks. role:"system" messages (beta) are skipped
  // for alternation and pairing.
  const turns: { index: number; role: 'user' | 'assistant'; blocks: Record<string, any>[] }[] = [];
  const seenToolUseIds = new Set<string>();

  messages.forEach((message, i) => {
    if (!isObject(message)) throw new InvalidRequest(`messages.${i}: Input should be an object`);
    const { role, content } = message;
    if (role !== 'user' && role !== 'assistant' && role !== 'system') {
      throw new InvalidRequest(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    }
    let blocks: Record<string, any>[];
    if (typeof content === 'string') {
      blocks = content === '' ? [] : [{ type: 'text', text: content }];
    } else if (Array.isArray(content)) {
      content.forEach((block, j) => {
        if (!isObject(block) || typeof block.type !== 'string') {
          throw new InvalidRequest(`messages.${i}.content.${j}: Input should be a content block object with a \`type\``);
        }
      });
      blocks = content as Record<string, any>[];
    } else {
      throw new InvalidRequest(`messages.${i}.content: Input should be a valid string or list of content blocks`);
    }
    const isFinal = i === messages.length - 1;
    if (blocks.length === 0 && !(isFinal && role === 'assistant')) {
      throw new InvalidRequest(
        `messages.${i}: all messages must have non-empty content except for the optional final assistant message`,
      );
    }
    blocks.forEach((block, j) => {
      if (block.type === 'text') {
        if (typeof block.text !== 'string') throw new InvalidRequest(`messages.${i}.content.${j}.text: Field required`);
        if (block.text === '') throw new InvalidRequest(`messages.${i}.content.${j}: text content blocks must be non-empty`);
      } else if (block.type === 'tool_use') {
        if (role !== 'assistant') {
          throw new InvalidRequest(`messages.${i}.content.${j}: \`tool_use\` blocks can only appear in assistant messages`);
        }
        if (typeof block.id !== 'string' || block.id === '') throw new InvalidRequest(`messages.${i}.content.${j}.id: Field required`);
        if (typeof block.name !== 'string' || block.name === '') throw new InvalidRequest(`messages.${i}.content.${j}.name: Field required`);
        if (!isObject(block.input)) throw new InvalidRequest(`messages.${i}.content.${j}.input: Input should be a valid dictionary`);
        if (seenToolUseIds.has(block.id)) {
          throw new InvalidRequest(`messages.${i}.content.${j}: \`tool_use\` ids must be unique, found ${block.id} twice`);
        }
        seenToolUseIds.add(block.id);
      } else if (block.type === 'tool_result') {
        if (role !== 'user') {
          throw new InvalidRequest(`messages.${i}.content.${j}: \`tool_result\` blocks can only appear in user messages`);
        }
        if (typeof block.tool_use_id !== 'string' || block.tool_use_id === '') {
          throw new InvalidRequest(`messages.${i}.content.${j}.tool_use_id: Field required`);
        }
        if (Array.isArray(block.content)) {
          block.content.forEach((part: unknown, k: number) => {
            if (!isObject(part) || !['text', 'image', 'search_result', 'document', 'tool_reference'].includes(part.type as string)) {
              throw new InvalidRequest(`messages.${i}.content.${j}.content.${k}: Input tag '${isObject(part) ? String(part.type) : ''}' found using 'type' does not match any of the expected tags`);
            }
            // A reference loads a tool the request defines, deferred: else the API cannot expand it.
            if (part.type === 'tool_reference' && !tools.deferred.has(part.tool_name as string)) {
              throw new InvalidRequest(
                `messages.${i}.content.${j}.content.${k}: tool_reference to '${String(part.tool_name)}', which is not a tool with defer_loading in \`tools\``,
              );
            }
          });
        }
      } else if (block.type === 'compaction') {
        const first = turns.length === 0 && j === 0 && role === 'assistant';
        if (!first) {
          throw new InvalidRequest(
            `messages.${i}.content.${j}: a \`compaction\` block must be the first block of the conversation, in an assistant message`,
          );
        }
      }
    });
    if (role === 'system') return;
    turns.push({ index: i, role, blocks });
  });

  if (turns.length === 0) throw new InvalidRequest('messages: at least one user or assistant message is required');
  const first = turns[0]!;
  const startsWithCompaction = first.role === 'assistant' && first.blocks[0]?.type === 'compaction';
  if (first.role !== 'user' && !startsWithCompaction) {
    throw new InvalidRequest(`messages.${first.index}: first message must use the "user" role`);
  }
  for (let t = 1; t < turns.length; t++) {
    const prev = turns[t - 1]!;
    const turn = turns[t]!;
    if (turn.role === prev.role) {
      throw new InvalidRequest(
        `messages.${turn.index}: roles must alternate between "user" and "assistant", but found multiple "${turn.role}" roles in a row`,
      );
    }
  }

  for (let t = 0; t < turns.length; t++) {
    const turn = turns[t]!;
    if (turn.role === 'user') {
      const prev = t > 0 ? turns[t - 1] : undefined;
      const offered = new Set<string>(
        prev ? prev.blocks.filter((b) => b.type === 'tool_use').map((b) => b.id as string) : [],
      );
      let sawOther = false;
      const answered = new Set<string>();
      turn.blocks.forEach((block, j) => {
        if (block.type !== 'tool_result') {
          sawOther = true;
          return;
        }
        const id = block.tool_use_id as string;
        if (!offered.has(id)) {
          throw new InvalidRequest(
            `messages.${turn.index}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${id}. ` +
              'Each `tool_result` block must have a corresponding `tool_use` block in the previous message.',
          );
        }
        if (answered.has(id)) {
          throw new InvalidRequest(`messages.${turn.index}.content.${j}: duplicate \`tool_result\` for \`tool_use_id\` ${id}`);
        }
        if (sawOther) {
          throw new InvalidRequest(
            `messages.${turn.index}.content.${j}: \`tool_result\` blocks must come first in the content of a user message, before any other content`,
          );
        }
        answered.add(id);
      });
    } else {
      const ids = turn.blocks.filter((b) => b.type === 'tool_use').map((b) => b.id as string);
      const next = turns[t + 1];
      if (ids.length === 0 || !next) continue;
      const results = new Set(next.blocks.filter((b) => b.type === 'tool_result').map((b) => b.tool_use_id as string));
      const missing = ids.filter((id) => !results.has(id));
      if (missing.length > 0) {
        throw new InvalidRequest(
          `messages.${next.index}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. ` +
            'Each `tool_use` block must have a corresponding `tool_result` block in the next message.',
        );
      }
    }
  }
}

type WireBlock = Record<string, unknown>;

interface Prepared {
  content: WireBlock[];
  stopReason: string;
  usage: Required<Usage>;
}

function outputChars(content: WireBlock[]): number {
  let n = 0;
  for (const block of content) {
    if (block.type === 'text') n += String(block.text).length;
    else if (block.type === 'tool_use') n += JSON.stringify(block.input ?? {}).length;
    else if (block.type === 'compaction') n += String(block.content ?? '').length;
  }
  return n;
}

function toWire(blocks: Block[]): WireBlock[] {
  return blocks.map((block) =>
    block.type === 'tool_use'
      ? { type: 'tool_use', id: block.id ?? randomId('toolu_'), name: block.name, input: block.input ?? {} }
      : { type: 'text', text: block.text },
  );
}

function prepare(content: WireBlock[], stopReason: string | undefined, usage: Usage | undefined, rawBody: string): Prepared {
  const defaultStop = content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn';
  return {
    content,
    stopReason: stopReason ?? defaultStop,
    usage: {
      input_tokens: usage?.input_tokens ?? Math.ceil(rawBody.length / 4),
      output_tokens: usage?.output_tokens ?? Math.ceil(outputChars(content) / 4),
      cache_creation_input_tokens: usage?.cache_creation_input_tokens ?? 0,
      cache_read_input_tokens: usage?.cache_read_input_tokens ?? 0,
    },
  };
}

/** Splits a string into at most `parts` non-empty pieces (by code point). */
function chunks(text: string, parts = 3): string[] {
  const chars = Array.from(text);
  if (chars.length === 0) return [];
  const size = Math.ceil(chars.length / parts);
  const out: string[] = [];
  for (let i = 0; i < chars.length; i += size) out.push(chars.slice(i, i + size).join(''));
  return out;
}

function sse(type: string, data: unknown): string {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The SSE events for one content block at `index`. */
function blockEvents(block: WireBlock, index: number): string[] {
  const events: string[] = [];
  if (block.type === 'text') {
    events.push(sse('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }));
    for (const text of chunks(String(block.text))) {
      events.push(sse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text } }));
    }
  } else if (block.type === 'tool_use') {
    events.push(
      sse('content_block_start', {
        type: 'content_block_start',
        index,
        content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} },
      }),
    );
    for (const partial_json of chunks(JSON.stringify(block.input ?? {}))) {
      events.push(
        sse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json } }),
      );
    }
  } else {
    events.push(sse('content_block_start', { type: 'content_block_start', index, content_block: block }));
  }
  events.push(sse('content_block_stop', { type: 'content_block_stop', index }));
  return events;
}

function messageShell(id: string, model: string): Record<string, unknown> {
  return { id, type: 'message', role: 'assistant', model };
}

export async function startMessagesApi(options: { responder?: Responder; latencyMs?: number } = {}): Promise<MessagesApi> {
  const requests: RecordedRequest[] = [];
  const queue: Reply[] = [];
  let responder: Responder | undefined = options.responder;
  const latencyMs = options.latencyMs ?? 0;
  const sockets = new Set<Socket>();
  /** pending delays: close() clears them and lets their handlers finish (they then find the server closed) */
  const timers = new Map<NodeJS.Timeout, () => void>();
  let closed = false;

  const sleep = (ms: number): Promise<void> =>
    ms <= 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const timer = setTimeout(() => {
            timers.delete(timer);
            resolve();
          }, ms);
          timers.set(timer, resolve);
        });

  function baseHeaders(): Record<string, string> {
    return { 'request-id': randomId('req_'), 'anthropic-organization-id': '00000000-0000-0000-0000-000000000000' };
  }

  function gone(res: ServerResponse): boolean {
    return closed || res.destroyed || res.writableEnded || res.socket === null || res.socket.destroyed;
  }

  function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    if (gone(res)) return;
    const text = JSON.stringify(body);
    res.writeHead(status, {
      ...baseHeaders(),
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(text)),
      ...extra,
    });
    res.end(text);
  }

  function sendError(res: ServerResponse, status: number, type: string, message: string, retryAfter?: number): void {
    const extra: Record<string, string> = {};
    if (retryAfter !== undefined) extra['retry-after'] = String(retryAfter);
    sendJson(res, status, { type: 'error', error: { type, message } }, extra);
  }

  function destroySocket(res: ServerResponse): void {
    res.socket?.destroy();
  }

  function modelIds(): string[] {
    const ids = new Set<string>();
    for (const r of requests) if (isObject(r.body) && typeof r.body.model === 'string' && r.body.model) ids.add(r.body.model);
    return ids.size > 0 ? [...ids] : [DEFAULT_MODEL];
  }

  function modelInfo(id: string): Record<string, unknown> {
    return { id, type: 'model', display_name: id, created_at: '2025-01-01T00:00:00Z' };
  }

  async function nextReply(request: RecordedRequest, index: number): Promise<Reply> {
    const scripted = queue.shift();
    if (scripted) return scripted;
    if (responder) return responder(request, index);
    return {
      error: {
        status: 500,
        type: 'api_error',
        message: `messages-api stand-in: script exhausted (request #${index}: no scripted reply left and no responder)`,
      },
    };
  }

  function streamMessage(res: ServerResponse, model: string, prepared: Prepared, breakAfterStart: boolean): void {
    if (gone(res)) return;
    res.writeHead(200, {
      ...baseHeaders(),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    const id = randomId('msg_');
    const { usage } = prepared;
    const events: string[] = [
      sse('message_start', {
        type: 'message_start',
        message: {
          ...messageShell(id, model),
          content: [],
          stop_reason: null,
          stop_sequence: null,
          stop_details: null,
          usage: {
            input_tokens: usage.input_tokens,
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            output_tokens: 1,
          },
        },
      }),
      sse('ping', { type: 'ping' }),
    ];

    if (breakAfterStart) {
      // message_start, ping, the first block's start and its first delta; then the connection dies mid-stream.
      const first = prepared.content[0];
      if (first) events.push(...blockEvents(first, 0).slice(0, 2));
      const payload = events.join('');
      res.write(payload, () => destroySocket(res));
      return;
    }

    prepared.content.forEach((block, index) => events.push(...blockEvents(block, index)));
    events.push(
      sse('message_delta', {
        type: 'message_delta',
        delta: { stop_reason: prepared.stopReason, stop_sequence: null, stop_details: null },
        usage: {
          output_tokens: usage.output_tokens,
          input_tokens: usage.input_tokens,
          cache_read_input_tokens: usage.cache_read_input_tokens,
          cache_creation_input_tokens: usage.cache_creation_input_tokens,
        },
      }),
      sse('message_stop', { type: 'message_stop' }),
    );
    for (const event of events) {
      if (gone(res)) return;
      res.write(event);
    }
    res.end();
  }

  function jsonMessage(res: ServerResponse, model: string, prepared: Prepared): void {
    sendJson(res, 200, {
      ...messageShell(randomId('msg_'), model),
      content: prepared.content,
      stop_reason: prepared.stopReason,
      stop_sequence: null,
      stop_details: null,
      usage: prepared.usage,
    });
  }

  async function handleMessages(req: IncomingMessage, res: ServerResponse, path: string, rawBody: string): Promise<void> {
    let body: any = null;
    let parseError: string | undefined;
    try {
      body = JSON.parse(rawBody);
    } catch (error) {
      parseError = (error as Error).message;
    }
    const request: RecordedRequest = {
      method: req.method ?? 'GET',
      path,
      headers: { ...req.headers },
      body,
      rawBody,
      at: Date.now(),
    };
    requests.push(request);
    const index = requests.length - 1;

    if (request.method !== 'POST') {
      await sleep(latencyMs);
      sendError(res, 405, 'invalid_request_error', `Method ${request.method} not allowed for ${path}; use POST`);
      return;
    }
    if (parseError !== undefined) {
      await sleep(latencyMs);
      sendError(res, 400, 'invalid_request_error', `There was an issue with your request body: invalid JSON (${parseError})`);
      return;
    }
    try {
      validateBody(body);
    } catch (error) {
      if (!(error instanceof InvalidRequest)) throw error;
      await sleep(latencyMs);
      sendError(res, 400, 'invalid_request_error', error.message);
      return;
    }

    let reply: Reply;
    try {
      reply = await nextReply(request, index);
    } catch (error) {
      reply = {
        error: { status: 500, type: 'api_error', message: `messages-api stand-in: responder threw: ${(error as Error)?.message ?? error}` },
      };
    }
    const streaming = body.stream === true;
    const model: string = body.model;

    await sleep('delayMs' in reply && typeof reply.delayMs === 'number' ? reply.delayMs : latencyMs);
    if (gone(res)) return;

    if ('stall' in reply) return; // never answered: close() or the client's abort ends it
    if ('error' in reply) {
      const { status, type, message, retryAfter } = reply.error;
      sendError(res, status, type, message, retryAfter);
      return;
    }
    if ('breakStream' in reply) {
      if (!streaming) {
        destroySocket(res);
        return;
      }
      const content = toWire(reply.content ?? [{ type: 'text', text: 'This reply is cut off mid-stream.' }]);
      streamMessage(res, model, prepare(content, undefined, undefined, rawBody), true);
      return;
    }
    let prepared: Prepared;
    if ('compaction' in reply) {
      const block = {
        type: 'compaction',
        content: reply.compaction.content,
        encrypted_content: randomId('enc-'),
        signature: randomId('sig-'),
      };
      prepared = prepare([block], 'compaction', undefined, rawBody);
    } else {
      prepared = prepare(toWire(reply.content), reply.stop_reason, reply.usage, rawBody);
    }
    if (streaming) streamMessage(res, model, prepared, false);
    else jsonMessage(res, model, prepared);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, rawBody: string): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
    if (path === '/v1/messages') {
      await handleMessages(req, res, path, rawBody);
      return;
    }
    if (req.method === 'GET' && path === '/v1/models') {
      const data = modelIds().map(modelInfo);
      sendJson(res, 200, { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null });
      return;
    }
    const modelMatch = /^\/v1\/models\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && modelMatch) {
      const id = decodeURIComponent(modelMatch[1]!);
      if (modelIds().includes(id)) sendJson(res, 200, modelInfo(id));
      else sendError(res, 404, 'not_found_error', `model: ${id}`);
      return;
    }
    sendError(res, 404, 'not_found_error', `Not found: ${req.method} ${path}`);
  }

  const server = createServer((req, res) => {
    req.on('error', () => {});
    res.on('error', () => {});
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => {
      const rawBody = Buffer.concat(parts).toString('utf8');
      handle(req, res, rawBody).catch((error: unknown) => {
        if (gone(res)) return;
        if (res.headersSent) destroySocket(res);
        else sendError(res, 500, 'api_error', `messages-api stand-in crashed: ${(error as Error)?.stack ?? error}`);
      });
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_error, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    script(...replies: Reply[]): void {
      queue.push(...replies);
    },
    respondWith(next: Responder): void {
      responder = next;
    },
    close(): Promise<void> {
      closed = true;
      for (const [timer, resolve] of timers) {
        clearTimeout(timer);
        resolve();
      }
      timers.clear();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        sockets.clear();
      });
    },
  };
}
