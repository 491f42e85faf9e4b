/**
 * A local stand-in for Telegram's Bot API, for tests and benchmarks.
 *
 * The real grammy `Bot` works against it unchanged:
 *
 *   const api = await startBotApi({ token: '123:TEST' });
 *   const bot = new Bot('123:TEST', { client: { apiRoot: api.url } });
 *   bot.on('message:text', (ctx) => ctx.reply('hi'));
 *   void bot.start({ drop_pending_updates: false, timeout: 1 });
 *   api.sendText({ id: 42 }, 'hello');
 *   ...
 *   await bot.stop();
 *   await api.close();
 *
 * Served routes:
 * - `POST|GET /bot<token>/<method>` with a JSON, `application/x-www-form-urlencoded`, query-string or
 *   `multipart/form-data` body (grammy sends multipart when a file is attached; files are referenced by
 *   `attach://<id>` as grammy does, or are the field itself as curl does).
 * - `GET /file/bot<token>/<file_path>`: the content of a file (user-sent documents, via `getFile`).
 * - anything else: 404 `{ok:false,error_code:404,description:"Not Found"}`.
 *
 * Answers use Telegram's envelope: `{ok:true,result}` or `{ok:false,error_code,description,parameters?}`.
 * A wrong token is 401 "Unauthorized"; an unknown method 404 "Not Found".
 *
 * Methods: getMe, logOut, close, deleteWebhook (honours drop_pending_updates), getWebhookInfo, getUpdates
 * (real long polling: `offset` confirms and drops earlier updates, `timeout` holds the request, `limit`;
 * a second concurrent getUpdates terminates the first with 409 Conflict, like Telegram), sendMessage,
 * editMessageText, editMessageReplyMarkup, deleteMessage, answerCallbackQuery, setMyCommands,
 * getMyCommands, deleteMyCommands, sendDocument, sendChatAction, getFile.
 * Validation follows Telegram's messages for what a bot can get wrong: HTML parse_mode (unknown,
 * unbalanced, unclosed tags: "can't parse entities: ..."), empty or >4096-character text, >1024-character
 * captions, "message is not modified", unknown message ids, callback_data over 64 bytes, bad command names,
 * stale callback query ids.
 *
 * Every request is recorded in `calls` as soon as its body has been read (also failed and refused ones),
 * with the HTTP status it got once answered (0 for a destroyed socket).
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Update, Message, MessageEntity, InlineKeyboardMarkup, BotCommand } from 'grammy/types';

export interface RecordedCall {
  method: string;
  token: string;
  /** the parameters, parsed (JSON values of multipart fields are parsed too); files appear as `attach://...` strings */
  params: Record<string, any>;
  /** files of a multipart body, by field name */
  files: Record<string, UploadedFile>;
  /** HTTP method used */
  httpMethod: string;
  /** the client's own way in (`viaUrl(name)`), if it came through one */
  via?: string;
  /** when the body had been received, by the stand-in's clock (Date.now unless `now` was given) */
  at: number;
  /** HTTP status of the answer (0: socket destroyed; undefined: not answered yet) */
  status?: number;
  /** the JSON answer sent, when answered */
  response?: any;
}

export interface UploadedFile {
  filename: string;
  contentType?: string;
  content: Buffer;
}

export interface SentMessage {
  message_id: number;
  chat_id: number;
  date: number;
  /** the text (or a document's caption) as the user sees it: HTML tags removed, entities decoded */
  text?: string;
  /** the text exactly as the bot sent it (with HTML tags) */
  raw?: string;
  parse_mode?: string;
  entities: MessageEntity[];
  reply_markup?: InlineKeyboardMarkup;
  reply_to_message_id?: number;
  document?: { file_id: string; filename: string; content: Buffer };
  /** how many times it was edited (text or markup) */
  edits: number;
  deleted?: boolean;
}

export interface BotApiError {
  status: number;
  description: string;
  retry_after?: number;
}

export interface BotApi {
  /** e.g. http://127.0.0.1:PORT (pass as grammy's client.apiRoot) */
  url: string;
  token: string;
  /** the bot user returned by getMe */
  botInfo: { id: number; is_bot: true; first_name: string; username: string; can_join_groups: boolean; can_read_all_group_messages: boolean; supports_inline_queries: boolean; can_connect_to_business: boolean; has_main_web_app: boolean };
  /** every call, in order */
  calls: RecordedCall[];
  /** calls of one method, in order */
  callsOf(method: string): RecordedCall[];
  /** Queue an incoming update; long polls waiting get it at once. update_id assigned from 1. Returns the update_id. */
  pushUpdate(update: Omit<Update, 'update_id'>): number;
  /** A private-chat text message from a user (chat id = user id unless chatId). Returns the update_id. */
  sendText(from: { id: number; username?: string; first_name?: string }, text: string, extra?: { reply_to_message_id?: number; chatId?: number }): number;
  /** A private-chat message with a document from a user; the bot can fetch it with getFile. Returns the update_id. */
  sendDocumentFromUser(from: { id: number; username?: string; first_name?: string }, file: { filename: string; content: Buffer | string; caption?: string; mime_type?: string }, extra?: { reply_to_message_id?: number; chatId?: number }): number;
  /** A callback_query: the user pressed an inline button with `data` on the bot's message. Returns the update_id. */
  pressButton(from: { id: number; username?: string; first_name?: string }, message_id: number, data: string, chatId?: number): number;
  /** Updates not yet confirmed by an offset. */
  pendingUpdates(): Update[];
  /** Make the next `count` calls of `method` (or of any method with "*") fail with this error. */
  failNext(method: string, count: number, error: BotApiError): void;
  /** Simulate an outage: every request (and every waiting poll) gets its socket destroyed ("refuse", default) or a 502, until `up()`. */
  down(mode?: 'refuse' | '502'): void;
  /**
   * One client's way in: `viaUrl(name)` is an apiRoot (`url/via/name`) that reaches this server as
   * `url` does, until `cutOff(name)`: then every request through it, and its poll waiting now,
   * has its socket destroyed (a network that cannot reach Telegram: what Telegram answers never
   * arrives), while other clients go on; `reconnect(name)` ends it.
   */
  viaUrl(name: string): string;
  cutOff(name: string): void;
  reconnect(name: string): void;
  up(): void;
  /** Hold getUpdates requests (new and waiting) without answering until `releasePolls()`, which answers them as if they had just arrived. */
  stallPolls(): void;
  releasePolls(): void;
  /** number of getUpdates requests currently held open (long polling or stalled) */
  openPolls(): number;
  /** The chat as the user sees it: the bot's messages (not deleted) in order, with their current text, documents and markup. */
  messages(chatId: number): SentMessage[];
  /** the commands set by setMyCommands (default scope) */
  commands: BotCommand[];
  /** answered callback queries, by id */
  answeredCallbacks: Map<string, { text?: string; show_alert?: boolean }>;
  /** Resolve when `predicate` holds over the calls (checked after each call is answered), or reject after timeoutMs (default 2000). */
  waitFor(predicate: (calls: RecordedCall[]) => boolean, timeoutMs?: number): Promise<void>;
  /** closes all sockets including held polls */
  close(): Promise<void>;
}

class ApiError extends Error {
  status: number;
  retryAfter: number | undefined;
  constructor(status: number, description: string, retryAfter?: number) {
    super(description);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const badRequest = (what: string): ApiError => new ApiError(400, `Bad Request: ${what}`);

function isObject(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------- HTML parse_mode

const TAG_TYPES: Record<string, string> = {
  b: 'bold', strong: 'bold',
  i: 'italic', em: 'italic',
  u: 'underline', ins: 'underline',
  s: 'strikethrough', strike: 'strikethrough', del: 'strikethrough',
  'tg-spoiler': 'spoiler', span: 'spoiler',
  a: 'text_link',
  code: 'code',
  pre: 'pre',
  blockquote: 'blockquote',
  'tg-emoji': 'custom_emoji',
};

const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"' };

/**
 * Parses Telegram's HTML style like TDLib does (td/telegram/MessageEntity.cpp parse_html): returns the
 * plain text and entities, or throws 400 "can't parse entities: ..." with TDLib's messages and UTF-8 byte offsets.
 */
export function parseHtml(html: string): { text: string; entities: MessageEntity[] } {
  let out = '';
  const entities: MessageEntity[] = [];
  const open: { tag: string; start: number; attrs: Record<string, string> }[] = [];
  const byteOffset = (i: number): number => Buffer.byteLength(html.slice(0, i));
  const fail = (what: string): never => {
    throw badRequest(`can't parse entities: ${what}`);
  };
  const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\n' || c === '\t' || c === '\r';
  let i = 0;
  while (i < html.length) {
    const c = html[i]!;
    if (c === '&') {
      const m = /^&(?:#(\d{1,7})|#x([0-9a-fA-F]{1,6})|([a-zA-Z]+));/.exec(html.slice(i, i + 12));
      if (m) {
        let decoded: string | undefined;
        if (m[1] !== undefined) decoded = String.fromCodePoint(Math.min(Number(m[1]), 0x10ffff));
        else if (m[2] !== undefined) decoded = String.fromCodePoint(Math.min(parseInt(m[2], 16), 0x10ffff));
        else decoded = NAMED_ENTITIES[m[3]!.toLowerCase()];
        if (decoded !== undefined) {
          out += decoded;
          i += m[0].length;
          continue;
        }
      }
      out += c;
      i++;
      continue;
    }
    if (c !== '<') {
      out += c;
      i++;
      continue;
    }
    const begin = i;
    i++;
    if (html[i] !== '/') {
      let end = i;
      while (end < html.length && !isSpace(html[end]) && html[end] !== '>') end++;
      if (end >= html.length) fail(`Unclosed start tag at byte offset ${byteOffset(begin)}`);
      const tag = html.slice(i, end).toLowerCase();
      if (!(tag in TAG_TYPES)) fail(`Unsupported start tag "${tag}" at byte offset ${byteOffset(begin)}`);
      i = end;
      const attrs: Record<string, string> = {};
      while (i < html.length && html[i] !== '>') {
        while (isSpace(html[i])) i++;
        if (html[i] === '>') break;
        const nameStart = i;
        while (i < html.length && !isSpace(html[i]) && html[i] !== '=' && html[i] !== '>') i++;
        const name = html.slice(nameStart, i).toLowerCase();
        while (isSpace(html[i])) i++;
        if (html[i] !== '=') {
          if (name === '' || i >= html.length) fail(`Unclosed start tag at byte offset ${byteOffset(begin)}`);
          attrs[name] = '';
          continue;
        }
        i++;
        while (isSpace(html[i])) i++;
        if (i >= html.length) fail(`Unclosed start tag at byte offset ${byteOffset(begin)}`);
        let value: string;
        const quote = html[i];
        if (quote === '"' || quote === "'") {
          const close = html.indexOf(quote, i + 1);
          if (close < 0) fail(`Unclosed start tag at byte offset ${byteOffset(begin)}`);
          value = html.slice(i + 1, close);
          i = close + 1;
        } else {
          const valueStart = i;
          while (i < html.length && !isSpace(html[i]) && html[i] !== '>') i++;
          value = html.slice(valueStart, i);
        }
        attrs[name] = value.replace(/&(lt|gt|amp|quot);/g, (_, e: string) => NAMED_ENTITIES[e]!);
      }
      if (html[i] !== '>') fail(`Unclosed start tag "${tag}" at byte offset ${byteOffset(begin)}`);
      i++;
      if (tag === 'span' && attrs['class'] !== 'tg-spoiler') fail(`Tag "span" must have class "tg-spoiler" at byte offset ${byteOffset(begin)}`);
      if (tag === 'tg-emoji' && !attrs['emoji-id']) fail(`Custom emoji entity must contain a valid custom emoji identifier at byte offset ${byteOffset(begin)}`);
      open.push({ tag, start: utf16Length(out), attrs });
    } else {
      i++;
      if (open.length === 0) fail(`Unexpected end tag at byte offset ${byteOffset(begin)}`);
      let end = i;
      while (end < html.length && !isSpace(html[end]) && html[end] !== '>') end++;
      const tag = html.slice(i, end).toLowerCase();
      const top = open[open.length - 1]!;
      if (tag !== '' && tag !== top.tag) {
        fail(`Unmatched end tag at byte offset ${byteOffset(begin)}, expected "</${top.tag}>", found "</${tag}>"`);
      }
      i = end;
      while (isSpace(html[i])) i++;
      if (html[i] !== '>') fail(`Unclosed end tag at byte offset ${byteOffset(begin)}`);
      i++;
      open.pop();
      const offset = top.start;
      const length = utf16Length(out) - offset;
      if (length > 0) {
        const type = TAG_TYPES[top.tag]!;
        const parent = open[open.length - 1];
        if (type === 'code' && parent?.tag === 'pre') {
          // <pre><code class="language-x">: the pre entity gets the language when it closes
          const lang = /^language-(.+)$/.exec(top.attrs['class'] ?? '')?.[1];
          if (lang) parent.attrs['__language'] = lang;
          continue;
        }
        const entity: Record<string, unknown> = { type, offset, length };
        if (type === 'text_link') {
          const href = top.attrs['href'] ?? '';
          if (href === '') continue; // TDLib drops links without a URL
          entity['url'] = href;
        }
        if (type === 'pre' && top.attrs['__language']) entity['language'] = top.attrs['__language'];
        if (type === 'custom_emoji') entity['custom_emoji_id'] = top.attrs['emoji-id'];
        if (type === 'blockquote' && 'expandable' in top.attrs) entity['type'] = 'expandable_blockquote';
        entities.push(entity as unknown as MessageEntity);
      }
    }
  }
  if (open.length > 0) fail(`Can't find end tag corresponding to start tag "${open[open.length - 1]!.tag}"`);
  entities.sort((a, b) => a.offset - b.offset || b.length - a.length);
  return { text: out, entities };
}

function utf16Length(s: string): number {
  return s.length;
}

/** Telegram counts message length in Unicode code points after entity parsing. */
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

// ---------------------------------------------------------------- bodies

interface ParsedBody {
  params: Record<string, any>;
  files: Record<string, UploadedFile>;
}

function parseHeaderParams(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /;\s*([^=;\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(header))) out[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!.trim();
  return out;
}

function parseMultipart(body: Buffer, boundary: string): ParsedBody {
  const params: Record<string, any> = {};
  const files: Record<string, UploadedFile> = {};
  const delimiter = Buffer.from(`--${boundary}`);
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw badRequest('invalid multipart body');
  while (true) {
    pos += delimiter.length;
    if (body.subarray(pos, pos + 2).toString() === '--') break;
    if (body.subarray(pos, pos + 2).toString() === '\r\n') pos += 2;
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) throw badRequest('invalid multipart body');
    const headers: Record<string, string> = {};
    for (const line of body.subarray(pos, headerEnd).toString('utf8').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headerEnd + 4);
    if (next < 0) throw badRequest('invalid multipart body');
    const content = Buffer.from(body.subarray(headerEnd + 4, next));
    const disposition = parseHeaderParams(';' + (headers['content-disposition'] ?? '').replace(/^[^;]*;?/, ''));
    const name = disposition['name'];
    if (name !== undefined) {
      if (disposition['filename'] !== undefined) {
        const file: UploadedFile = { filename: disposition['filename'], content };
        if (headers['content-type']) file.contentType = headers['content-type'];
        files[name] = file;
      } else {
        params[name] = content.toString('utf8');
      }
    }
    pos = next + 2;
  }
  return { params, files };
}

/** Form and query values are strings; Telegram parses JSON-looking ones (objects, arrays, numbers, booleans). */
function decodeValues(params: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = {};
  for (const [key, value] of Object.entries(params)) {
    if (typeof value === 'string' && /^\s*(?:[[{]|-?\d+(?:\.\d+)?\s*$|true\s*$|false\s*$)/.test(value)) {
      try {
        out[key] = JSON.parse(value);
        continue;
      } catch {
        // keep the string
      }
    }
    out[key] = value;
  }
  return out;
}

function parseBody(req: IncomingMessage, raw: Buffer, query: URLSearchParams): ParsedBody {
  const fromQuery = decodeValues(Object.fromEntries(query));
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  if (raw.length === 0) return { params: fromQuery, files: {} };
  if (type.startsWith('application/json')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      throw badRequest("can't parse JSON object");
    }
    if (!isObject(parsed)) throw badRequest("can't parse JSON object");
    return { params: { ...fromQuery, ...parsed }, files: {} };
  }
  if (type.startsWith('multipart/form-data')) {
    const boundary = parseHeaderParams(req.headers['content-type'] ?? '')['boundary'];
    if (!boundary) throw badRequest('invalid multipart body');
    const { params, files } = parseMultipart(raw, boundary);
    return { params: { ...fromQuery, ...decodeValues(params) }, files };
  }
  if (type.startsWith('application/x-www-form-urlencoded')) {
    return { params: { ...fromQuery, ...decodeValues(Object.fromEntries(new URLSearchParams(raw.toString('utf8')))) }, files: {} };
  }
  return { params: fromQuery, files: {} };
}

// ---------------------------------------------------------------- server

interface Chat {
  nextMessageId: number;
  /** every message in the chat: the bot's and the users' */
  messages: Map<number, { fromBot: boolean; sent?: SentMessage }>;
}

interface HeldPoll {
  call: RecordedCall;
  res: ServerResponse;
  timer?: NodeJS.Timeout;
}

const NOT_MODIFIED =
  'message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message';

const CHAT_ACTIONS = new Set([
  'typing', 'upload_photo', 'record_video', 'upload_video', 'record_voice', 'upload_voice',
  'upload_document', 'choose_sticker', 'find_location', 'record_video_note', 'upload_video_note',
]);

export async function startBotApi(options: { token?: string; botUsername?: string; botId?: number; /** the clock stamped on recorded calls (a test's fake clock); default Date.now */ now?: () => number } = {}): Promise<BotApi> {
  const stamp = options.now ?? Date.now;
  const token = options.token ?? '123456:TEST-TOKEN';
  const botId = options.botId ?? Number(/^(\d+):/.exec(token)?.[1] ?? 123456);
  const username = options.botUsername ?? 'nightshift_test_bot';
  const botInfo = {
    id: botId,
    is_bot: true as const,
    first_name: 'Nightshift',
    username,
    can_join_groups: true,
    can_read_all_group_messages: false,
    supports_inline_queries: false,
    can_connect_to_business: false,
    has_main_web_app: false,
  };

  const calls: RecordedCall[] = [];
  let updates: Update[] = [];
  let nextUpdateId = 1;
  const chats = new Map<number, Chat>();
  const failures: { method: string; count: number; error: BotApiError }[] = [];
  let outage: 'refuse' | '502' | undefined;
  const cut = new Set<string>();
  let stalled = false;
  const waiting: HeldPoll[] = []; // long polls waiting for updates
  const held: HeldPoll[] = []; // stalled polls
  const sockets = new Set<Socket>();
  const callbackQueries = new Map<string, { from: number; at: number }>();
  const answeredCallbacks = new Map<string, { text?: string; show_alert?: boolean }>();
  const files = new Map<string, { file_unique_id: string; filename: string; content: Buffer; path: string }>();
  let fileSeq = 0;
  let callbackSeq = 0;
  let commands: BotCommand[] = [];
  const watchers = new Set<() => void>();
  let closed = false;

  const now = (): number => Math.floor(Date.now() / 1000);

  function chat(id: number): Chat {
    let c = chats.get(id);
    if (!c) {
      c = { nextMessageId: 1, messages: new Map() };
      chats.set(id, c);
    }
    return c;
  }

  function userOf(from: { id: number; username?: string; first_name?: string }): Record<string, unknown> {
    const user: Record<string, unknown> = { id: from.id, is_bot: false, first_name: from.first_name ?? from.username ?? `User${from.id}` };
    if (from.username !== undefined) user['username'] = from.username;
    return user;
  }

  function chatObject(chatId: number, from?: { id: number; username?: string; first_name?: string }): Record<string, unknown> {
    if (chatId > 0) {
      const c: Record<string, unknown> = { id: chatId, type: 'private', first_name: from?.first_name ?? from?.username ?? `User${chatId}` };
      if (from?.username !== undefined) c['username'] = from.username;
      return c;
    }
    return { id: chatId, type: 'group', title: `Group ${chatId}` };
  }

  function storeFile(filename: string, content: Buffer): { file_id: string; file_unique_id: string; path: string } {
    fileSeq++;
    const file_id = `BQACAgIAAxkBAAI${String(fileSeq).padStart(6, '0')}`;
    const file_unique_id = `AgAD${String(fileSeq).padStart(4, '0')}`;
    const ext = /\.([A-Za-z0-9]{1,8})$/.exec(filename)?.[1] ?? 'dat';
    const path = `documents/file_${fileSeq}.${ext}`;
    files.set(file_id, { file_unique_id, filename, content, path });
    return { file_id, file_unique_id, path };
  }

  // -------------------------------------------------------------- updates and polling

  function pushUpdate(update: Omit<Update, 'update_id'>): number {
    const update_id = nextUpdateId++;
    updates.push({ update_id, ...update } as Update);
    // every waiting long poll whose offset admits the update answers now
    for (const poll of [...waiting]) answerPoll(poll, true);
    return update_id;
  }

  function incomingMessage(
    from: { id: number; username?: string; first_name?: string },
    content: Record<string, unknown>,
    extra: { reply_to_message_id?: number; chatId?: number } = {},
  ): number {
    const chatId = extra.chatId ?? from.id;
    const c = chat(chatId);
    const message_id = c.nextMessageId++;
    c.messages.set(message_id, { fromBot: false });
    const message: Record<string, unknown> = { message_id, from: userOf(from), chat: chatObject(chatId, from), date: now(), ...content };
    if (extra.reply_to_message_id !== undefined) {
      const replied = c.messages.get(extra.reply_to_message_id);
      message['reply_to_message'] = replied?.sent
        ? messageObject(replied.sent)
        : { message_id: extra.reply_to_message_id, from: userOf(from), chat: chatObject(chatId, from), date: now(), text: '' };
    }
    return pushUpdate({ message: message as any });
  }

  function sendText(from: { id: number; username?: string; first_name?: string }, text: string, extra?: { reply_to_message_id?: number; chatId?: number }): number {
    const content: Record<string, unknown> = { text };
    const command = /^\/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?/.exec(text);
    if (command) content['entities'] = [{ type: 'bot_command', offset: 0, length: command[0].length }];
    return incomingMessage(from, content, extra);
  }

  function sendDocumentFromUser(
    from: { id: number; username?: string; first_name?: string },
    file: { filename: string; content: Buffer | string; caption?: string; mime_type?: string },
    extra?: { reply_to_message_id?: number; chatId?: number },
  ): number {
    const content = typeof file.content === 'string' ? Buffer.from(file.content) : file.content;
    const stored = storeFile(file.filename, content);
    const document: Record<string, unknown> = { file_id: stored.file_id, file_unique_id: stored.file_unique_id, file_name: file.filename, file_size: content.length };
    if (file.mime_type) document['mime_type'] = file.mime_type;
    const body: Record<string, unknown> = { document };
    if (file.caption !== undefined) body['caption'] = file.caption;
    return incomingMessage(from, body, extra);
  }

  function pressButton(from: { id: number; username?: string; first_name?: string }, message_id: number, data: string, chatId?: number): number {
    const cid = chatId ?? from.id;
    const stored = chats.get(cid)?.messages.get(message_id)?.sent;
    const id = `${BigInt(from.id) * 1000n + BigInt(++callbackSeq)}`;
    callbackQueries.set(id, { from: from.id, at: Date.now() });
    const message = stored ? messageObject(stored) : { message_id, chat: chatObject(cid, from), date: 0 };
    return pushUpdate({
      callback_query: { id, from: userOf(from), message, chat_instance: String(cid * 7 + 1), data } as any,
    });
  }

  function answerPoll(poll: HeldPoll, onlyIfUpdates: boolean): void {
    const limit = Math.max(1, Math.min(100, Number(poll.call.params['limit'] ?? 100) || 100));
    const batch = updates.slice(0, limit);
    if (onlyIfUpdates && batch.length === 0) return;
    const i = waiting.indexOf(poll);
    if (i >= 0) waiting.splice(i, 1);
    if (poll.timer) clearTimeout(poll.timer);
    reply(poll.res, poll.call, 200, { ok: true, result: batch });
  }

  function getUpdates(call: RecordedCall, res: ServerResponse): void {
    const p = call.params;
    if (p['offset'] !== undefined) {
      let offset = Number(p['offset']);
      if (!Number.isInteger(offset)) throw badRequest('invalid offset specified');
      if (offset < 0) offset = Math.max(1, (updates[updates.length - 1]?.update_id ?? 0) + offset + 1);
      updates = updates.filter((u) => u.update_id >= offset);
    }
    // a newer getUpdates terminates the older ones, like Telegram
    for (const old of waiting.splice(0)) {
      if (old.timer) clearTimeout(old.timer);
      reply(old.res, old.call, 409, {
        ok: false,
        error_code: 409,
        description: 'Conflict: terminated by other getUpdates request; make sure that only one bot instance is running',
      });
    }
    const timeout = Math.max(0, Math.min(50, Number(p['timeout'] ?? 0) || 0));
    const poll: HeldPoll = { call, res };
    if (updates.length > 0 || timeout === 0) return answerPoll(poll, false);
    waiting.push(poll);
    notifyWatchers();
    poll.timer = setTimeout(() => answerPoll(poll, false), timeout * 1000);
    res.on('close', () => {
      const i = waiting.indexOf(poll);
      if (i >= 0) {
        waiting.splice(i, 1);
        if (poll.timer) clearTimeout(poll.timer);
        if (call.status === undefined) settle(call, 0);
      }
    });
  }

  // -------------------------------------------------------------- messages

  function messageObject(m: SentMessage): Message {
    const msg: Record<string, unknown> = {
      message_id: m.message_id,
      from: { id: botInfo.id, is_bot: true, first_name: botInfo.first_name, username: botInfo.username },
      chat: chatObject(m.chat_id),
      date: m.date,
    };
    if (m.edits > 0) msg['edit_date'] = now();
    if (m.document) {
      msg['document'] = { file_id: m.document.file_id, file_unique_id: files.get(m.document.file_id)?.file_unique_id, file_name: m.document.filename, file_size: m.document.content.length };
      if (m.text !== undefined) msg['caption'] = m.text;
      if (m.entities.length > 0) msg['caption_entities'] = m.entities;
    } else {
      msg['text'] = m.text ?? '';
      if (m.entities.length > 0) msg['entities'] = m.entities;
    }
    if (m.reply_markup) msg['reply_markup'] = m.reply_markup;
    return msg as unknown as Message;
  }

  function chatIdOf(p: Record<string, any>): number {
    const id = p['chat_id'];
    if (id === undefined || id === '') throw badRequest('chat_id is empty');
    if (typeof id === 'string' && id.startsWith('@')) throw badRequest('chat not found');
    const n = Number(id);
    if (!Number.isInteger(n) || n === 0) throw badRequest('chat not found');
    return n;
  }

  function formatted(raw: unknown, parseMode: unknown, entitiesParam: unknown, maxLength: number, kind: 'text' | 'caption'): { text: string; entities: MessageEntity[] } {
    const value = raw === undefined || raw === null ? '' : String(raw);
    let parsed: { text: string; entities: MessageEntity[] };
    const mode = typeof parseMode === 'string' ? parseMode.toLowerCase() : '';
    if (mode === 'html') parsed = parseHtml(value);
    else if (mode === '' ) parsed = { text: value, entities: Array.isArray(entitiesParam) ? (entitiesParam as MessageEntity[]) : [] };
    else if (mode === 'markdown' || mode === 'markdownv2') parsed = { text: value, entities: [] }; // not interpreted by the stand-in
    else throw badRequest(`unsupported parse_mode`);
    if (kind === 'text' && parsed.text.trim() === '') throw badRequest('message text is empty');
    if (codePoints(parsed.text) > maxLength) throw badRequest(kind === 'text' ? 'message is too long' : 'message caption is too long');
    return parsed;
  }

  function validMarkup(markup: unknown): InlineKeyboardMarkup | undefined {
    if (markup === undefined || markup === null || markup === '') return undefined;
    if (!isObject(markup)) throw badRequest("can't parse reply keyboard markup JSON object");
    if (!('inline_keyboard' in markup)) return undefined; // reply keyboards etc.: accepted, not shown
    const rows = markup['inline_keyboard'];
    if (!Array.isArray(rows)) throw badRequest("field \"inline_keyboard\" of the InlineKeyboardMarkup should be an Array of Arrays");
    for (const row of rows) {
      if (!Array.isArray(row)) throw badRequest("field \"inline_keyboard\" of the InlineKeyboardMarkup should be an Array of Arrays");
      for (const button of row) {
        if (!isObject(button) || typeof button['text'] !== 'string') throw badRequest("can't find field \"text\"");
        if (button['text'] === '') throw badRequest('BUTTON_TEXT_EMPTY'); // close enough to Telegram's
        if ('callback_data' in button) {
          const data = String(button['callback_data']);
          if (data === '' || Buffer.byteLength(data) > 64) throw badRequest('BUTTON_DATA_INVALID');
        } else if (!('url' in button) && !('switch_inline_query' in button) && !('switch_inline_query_current_chat' in button) && !('web_app' in button) && !('copy_text' in button) && !('pay' in button) && !('login_url' in button) && !('callback_game' in button)) {
          throw badRequest("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard");
        }
      }
    }
    return markup as InlineKeyboardMarkup;
  }

  function replyTarget(c: Chat, p: Record<string, any>): number | undefined {
    const params = isObject(p['reply_parameters']) ? p['reply_parameters'] : undefined;
    const id = params?.['message_id'] ?? p['reply_to_message_id'];
    if (id === undefined) return undefined;
    const n = Number(id);
    if (!c.messages.has(n)) {
      if (params?.['allow_sending_without_reply'] || p['allow_sending_without_reply']) return undefined;
      throw badRequest('message to be replied not found');
    }
    return n;
  }

  function newMessage(chatId: number, fields: Omit<SentMessage, 'message_id' | 'chat_id' | 'date' | 'edits'>): SentMessage {
    const c = chat(chatId);
    const message: SentMessage = { message_id: c.nextMessageId++, chat_id: chatId, date: now(), edits: 0, ...fields };
    c.messages.set(message.message_id, { fromBot: true, sent: message });
    return message;
  }

  function editable(p: Record<string, any>): SentMessage {
    if (p['inline_message_id'] !== undefined) throw badRequest('MESSAGE_ID_INVALID');
    const chatId = chatIdOf(p);
    if (p['message_id'] === undefined) throw badRequest('message identifier is not specified');
    const entry = chats.get(chatId)?.messages.get(Number(p['message_id']));
    if (!entry || entry.sent?.deleted) throw badRequest('message to edit not found');
    if (!entry.fromBot || !entry.sent) throw badRequest("message can't be edited");
    return entry.sent;
  }

  const sameMarkup = (a: InlineKeyboardMarkup | undefined, b: InlineKeyboardMarkup | undefined): boolean =>
    JSON.stringify(a?.inline_keyboard ?? []) === JSON.stringify(b?.inline_keyboard ?? []);

  // -------------------------------------------------------------- methods

  type Handler = (p: Record<string, any>, call: RecordedCall) => unknown;
  const methods: Record<string, Handler> = {
    getMe: () => botInfo,
    getUpdates: () => [], // answered by getUpdates() above, with long polling
    logOut: () => true,
    close: () => true,
    deleteWebhook: (p) => {
      if (p['drop_pending_updates'] === true) updates = [];
      return true;
    },
    setWebhook: () => true,
    getWebhookInfo: () => ({ url: '', has_custom_certificate: false, pending_update_count: updates.length }),
    sendMessage: (p) => {
      const chatId = chatIdOf(p);
      const { text, entities } = formatted(p['text'], p['parse_mode'], p['entities'], 4096, 'text');
      const reply_markup = validMarkup(p['reply_markup']);
      const reply_to_message_id = replyTarget(chat(chatId), p);
      const fields: Omit<SentMessage, 'message_id' | 'chat_id' | 'date' | 'edits'> = { text, raw: String(p['text']), entities };
      if (typeof p['parse_mode'] === 'string') fields.parse_mode = p['parse_mode'];
      if (reply_markup) fields.reply_markup = reply_markup;
      if (reply_to_message_id !== undefined) fields.reply_to_message_id = reply_to_message_id;
      return messageObject(newMessage(chatId, fields));
    },
    editMessageText: (p) => {
      const message = editable(p);
      if (message.document) throw badRequest('there is no text in the message to edit');
      const { text, entities } = formatted(p['text'], p['parse_mode'], p['entities'], 4096, 'text');
      const reply_markup = validMarkup(p['reply_markup']);
      if (text === message.text && JSON.stringify(entities) === JSON.stringify(message.entities) && sameMarkup(reply_markup, message.reply_markup)) {
        throw badRequest(NOT_MODIFIED);
      }
      message.text = text;
      message.raw = String(p['text']);
      message.entities = entities;
      if (typeof p['parse_mode'] === 'string') message.parse_mode = p['parse_mode'];
      else delete message.parse_mode;
      if (reply_markup) message.reply_markup = reply_markup;
      else delete message.reply_markup;
      message.edits++;
      return messageObject(message);
    },
    editMessageReplyMarkup: (p) => {
      const message = editable(p);
      const reply_markup = validMarkup(p['reply_markup']);
      if (sameMarkup(reply_markup, message.reply_markup)) throw badRequest(NOT_MODIFIED);
      if (reply_markup) message.reply_markup = reply_markup;
      else delete message.reply_markup;
      message.edits++;
      return messageObject(message);
    },
    deleteMessage: (p) => {
      const chatId = chatIdOf(p);
      const entry = chats.get(chatId)?.messages.get(Number(p['message_id']));
      if (!entry || entry.sent?.deleted) throw badRequest('message to delete not found');
      if (entry.sent) entry.sent.deleted = true;
      else chats.get(chatId)!.messages.delete(Number(p['message_id']));
      return true;
    },
    answerCallbackQuery: (p) => {
      const id = String(p['callback_query_id'] ?? '');
      if (!callbackQueries.has(id) || answeredCallbacks.has(id)) {
        throw badRequest('query is too old and response timeout expired or query ID is invalid');
      }
      const answer: { text?: string; show_alert?: boolean } = {};
      if (p['text'] !== undefined) answer.text = String(p['text']);
      if (p['show_alert'] !== undefined) answer.show_alert = Boolean(p['show_alert']);
      answeredCallbacks.set(id, answer);
      return true;
    },
    setMyCommands: (p) => {
      const list = p['commands'];
      if (!Array.isArray(list)) throw badRequest('parameter "commands" is required');
      if (list.length > 100) throw badRequest('BOT_COMMANDS_TOO_MUCH');
      for (const command of list) {
        if (!isObject(command) || typeof command['command'] !== 'string' || !/^[a-z0-9_]{1,32}$/.test(command['command'])) {
          throw badRequest('BOT_COMMAND_INVALID');
        }
        if (typeof command['description'] !== 'string' || command['description'].length < 1 || command['description'].length > 256) {
          throw badRequest('BOT_COMMAND_DESCRIPTION_INVALID');
        }
      }
      commands = list.map((c: BotCommand) => ({ command: c.command, description: c.description }));
      api.commands = commands;
      return true;
    },
    getMyCommands: () => commands,
    deleteMyCommands: () => {
      commands = [];
      api.commands = commands;
      return true;
    },
    sendChatAction: (p) => {
      chatIdOf(p);
      if (!CHAT_ACTIONS.has(String(p['action']))) throw badRequest('wrong parameter action in request');
      return true;
    },
    sendDocument: (p, call) => {
      const chatId = chatIdOf(p);
      const ref = p['document'];
      let upload: UploadedFile | undefined;
      let fileId: string | undefined;
      if (typeof ref === 'string' && ref.startsWith('attach://')) {
        upload = call.files[ref.slice('attach://'.length)];
        if (!upload) throw badRequest('wrong file identifier/HTTP URL specified');
      } else if (call.files['document']) {
        upload = call.files['document'];
      } else if (typeof ref === 'string' && files.has(ref)) {
        fileId = ref;
      } else if (ref === undefined || ref === '') {
        throw badRequest('there is no document in the request');
      } else {
        throw badRequest('wrong file identifier/HTTP URL specified');
      }
      if (upload && upload.content.length === 0) throw badRequest('file must be non-empty');
      const caption = p['caption'] !== undefined ? formatted(p['caption'], p['parse_mode'], p['caption_entities'], 1024, 'caption') : undefined;
      const reply_markup = validMarkup(p['reply_markup']);
      const reply_to_message_id = replyTarget(chat(chatId), p);
      let document: SentMessage['document'];
      if (upload) {
        const stored = storeFile(upload.filename, upload.content);
        document = { file_id: stored.file_id, filename: upload.filename, content: upload.content };
      } else {
        const f = files.get(fileId!)!;
        document = { file_id: fileId!, filename: f.filename, content: f.content };
      }
      const fields: Omit<SentMessage, 'message_id' | 'chat_id' | 'date' | 'edits'> = { entities: caption?.entities ?? [], document };
      if (caption) {
        fields.text = caption.text;
        fields.raw = String(p['caption']);
      }
      if (typeof p['parse_mode'] === 'string') fields.parse_mode = p['parse_mode'];
      if (reply_markup) fields.reply_markup = reply_markup;
      if (reply_to_message_id !== undefined) fields.reply_to_message_id = reply_to_message_id;
      return messageObject(newMessage(chatId, fields));
    },
    getFile: (p) => {
      const f = files.get(String(p['file_id'] ?? ''));
      if (!f) throw badRequest('invalid file_id');
      return { file_id: String(p['file_id']), file_unique_id: f.file_unique_id, file_size: f.content.length, file_path: f.path };
    },
  };

  // -------------------------------------------------------------- HTTP

  function notifyWatchers(): void {
    for (const watcher of [...watchers]) watcher();
  }

  function settle(call: RecordedCall, status: number, body?: unknown): void {
    call.status = status;
    if (body !== undefined) call.response = body;
    notifyWatchers();
  }

  function reply(res: ServerResponse, call: RecordedCall | undefined, status: number, body: unknown): void {
    if (closed || res.destroyed || res.writableEnded || !res.socket || res.socket.destroyed) {
      if (call && call.status === undefined) settle(call, 0);
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
    res.end(text);
    if (call) settle(call, status, body);
  }

  function refuse(res: ServerResponse, call: RecordedCall | undefined): void {
    res.socket?.destroy();
    if (call && call.status === undefined) settle(call, 0);
  }

  function errorBody(status: number, description: string, retryAfter?: number): Record<string, unknown> {
    const body: Record<string, unknown> = { ok: false, error_code: status, description };
    if (retryAfter !== undefined) body['parameters'] = { retry_after: retryAfter };
    return body;
  }

  function outageAnswer(res: ServerResponse, call: RecordedCall | undefined): void {
    if (outage === '502') reply(res, call, 502, errorBody(502, 'Bad Gateway'));
    else refuse(res, call);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const via = /^\/via\/([^/]+)(\/.*)$/.exec(url.pathname);
    if (via) {
      if (cut.has(via[1]!)) return refuse(res, undefined);
      url.pathname = via[2]!;
    }

    const fileRoute = /^\/file\/bot([^/]*)\/(.+)$/.exec(url.pathname);
    if (fileRoute) {
      if (outage) return outageAnswer(res, undefined);
      const f = [...files.values()].find((x) => x.path === decodeURIComponent(fileRoute[2]!));
      if (fileRoute[1] !== token || !f) return reply(res, undefined, 404, errorBody(404, 'Not Found'));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(f.content.length) });
      res.end(f.content);
      return;
    }

    const route = /^\/bot([^/]*)\/([A-Za-z0-9_]*)\/?$/.exec(url.pathname);
    const call: RecordedCall = {
      method: route?.[2] ?? '',
      token: route?.[1] ?? '',
      params: {},
      files: {},
      httpMethod: req.method ?? 'GET',
      at: stamp(),
      ...(via ? { via: via[1]! } : {}),
    };
    calls.push(call);
    if (outage) return outageAnswer(res, call);
    if (!route) return reply(res, call, 404, errorBody(404, 'Not Found'));
    try {
      const body = parseBody(req, raw, url.searchParams);
      call.params = body.params;
      call.files = body.files;
    } catch (error) {
      if (error instanceof ApiError) return reply(res, call, error.status, errorBody(error.status, error.message));
      throw error;
    }
    if (call.token !== token) return reply(res, call, 401, errorBody(401, 'Unauthorized'));
    const method = Object.keys(methods).find((m) => m.toLowerCase() === call.method.toLowerCase());
    if (!method) return reply(res, call, 404, errorBody(404, 'Not Found'));

    const failure = failures.find((f) => f.count > 0 && (f.method === '*' || f.method.toLowerCase() === method.toLowerCase()));
    if (failure) {
      failure.count--;
      if (failure.count === 0) failures.splice(failures.indexOf(failure), 1);
      const { status, description, retry_after } = failure.error;
      return reply(res, call, status, errorBody(status, description, retry_after));
    }

    if (method === 'getUpdates') {
      if (stalled) {
        const poll: HeldPoll = { call, res };
        held.push(poll);
        notifyWatchers();
        res.on('close', () => {
          const i = held.indexOf(poll);
          if (i >= 0) held.splice(i, 1);
          if (call.status === undefined) settle(call, 0);
        });
        return;
      }
      try {
        getUpdates(call, res);
      } catch (error) {
        if (error instanceof ApiError) return reply(res, call, error.status, errorBody(error.status, error.message));
        throw error;
      }
      return;
    }

    try {
      const result = methods[method]!(call.params, call);
      reply(res, call, 200, { ok: true, result });
    } catch (error) {
      if (error instanceof ApiError) return reply(res, call, error.status, errorBody(error.status, error.message, error.retryAfter));
      reply(res, call, 500, errorBody(500, `Internal Server Error: ${(error as Error).message}`));
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify(errorBody(500, `Internal Server Error: ${(error as Error).message}`)));
      }
    });
  });
  server.keepAliveTimeout = 1000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const api: BotApi = {
    url: `http://127.0.0.1:${port}`,
    token,
    botInfo,
    calls,
    callsOf: (method) => calls.filter((c) => c.method === method),
    pushUpdate,
    sendText,
    sendDocumentFromUser,
    pressButton,
    pendingUpdates: () => [...updates],
    failNext(method, count, error) {
      if (count > 0) failures.push({ method, count, error });
    },
    down(mode = 'refuse') {
      outage = mode;
      for (const poll of [...waiting.splice(0), ...held.splice(0)]) {
        if (poll.timer) clearTimeout(poll.timer);
        outageAnswer(poll.res, poll.call);
      }
    },
    up() {
      outage = undefined;
    },
    viaUrl: (name) => `http://127.0.0.1:${port}/via/${name}`,
    cutOff(name) {
      cut.add(name);
      for (const list of [waiting, held]) {
        for (const poll of list.filter((each) => each.call.via === name)) {
          list.splice(list.indexOf(poll), 1);
          if (poll.timer) clearTimeout(poll.timer);
          refuse(poll.res, poll.call);
        }
      }
    },
    reconnect: (name) => void cut.delete(name),
    stallPolls() {
      stalled = true;
      for (const poll of waiting.splice(0)) {
        if (poll.timer) clearTimeout(poll.timer);
        held.push(poll);
      }
    },
    releasePolls() {
      stalled = false;
      for (const poll of held.splice(0)) {
        if (poll.res.destroyed || poll.res.writableEnded) continue;
        try {
          getUpdates(poll.call, poll.res);
        } catch (error) {
          if (error instanceof ApiError) reply(poll.res, poll.call, error.status, errorBody(error.status, error.message));
        }
      }
    },
    openPolls: () => waiting.length + held.length,
    messages(chatId) {
      const c = chats.get(chatId);
      if (!c) return [];
      return [...c.messages.values()].flatMap((m) => (m.sent && !m.sent.deleted ? [m.sent] : []));
    },
    commands,
    answeredCallbacks,
    waitFor(predicate, timeoutMs = 2000) {
      return new Promise((resolve, reject) => {
        if (predicate(calls)) return resolve();
        const watcher = (): void => {
          if (!predicate(calls)) return;
          watchers.delete(watcher);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          watchers.delete(watcher);
          reject(new Error(`bot-api stand-in: waitFor timed out after ${timeoutMs} ms (${calls.length} calls: ${calls.map((c) => `${c.method}:${c.status ?? '…'}`).join(' ')})`));
        }, timeoutMs);
        watchers.add(watcher);
      });
    },
    async close() {
      closed = true;
      for (const poll of [...waiting.splice(0), ...held.splice(0)]) if (poll.timer) clearTimeout(poll.timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return api;
}
