import type Anthropic from "@anthropic-ai/sdk";
import type { MessageParam, TextBlockParam, Tool as ApiTool } from "@anthropic-ai/sdk/resources/messages";
import type { Clock } from "./clock.ts";
import type { ResolvedRole } from "./config.ts";
import { formatDuration } from "./duration.ts";
import { ModelError } from "./errors.ts";
import type { ContentBlock, Usage } from "./events.ts";

export interface ModelRequest {
  system: TextBlockParam[];
  tools: ApiTool[];
  messages: MessageParam[];
  maxTokens?: number;
}

export interface ModelReply {
  model: string;
  content: ContentBlock[];
  stopReason: string | null;
  usage: Usage;
  latencyMs: number;
  requestBytes: number;
}

export interface RetryNotice {
  attempt: number;
  delayMs: number;
  reason: string;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Called before each retry wait; must not throw. */
  onRetry?: (notice: RetryNotice) => void;
}

/** One model role's endpoint. The session loop sees only this. */
export interface ModelClient {
  readonly model: string;
  readonly role: string;
  /**
   * The endpoint expands `tool_reference` blocks in tool results into the definitions of tools sent
   * with `defer_loading` (Anthropic's API). Without it, deferred tools are described as text.
   */
  readonly toolReferences?: boolean;
  /** Streams one request; retries 429, 529, 5xx, timeouts and broken streams; throws ModelError after that. */
  complete(request: ModelRequest, options?: CallOptions): Promise<ModelReply>;
  /** Server-side compaction: the endpoint summarizes `messages`. Undefined when the endpoint lacks it. */
  compact?(request: ModelRequest & { instructions: string }, options?: CallOptions): Promise<{ summary: string; usage: Usage }>;
}

export interface RetryPolicy {
  attempts: number;
  initial_delay: number;
  max_delay: number;
  /** A request whose endpoint sends nothing for this long (no answer yet, or a stream that stalled) is abandoned and retried. */
  request_timeout: number;
}

export interface ModelClientOptions {
  clock: Clock;
  retry: RetryPolicy;
}

const COMPACTION_BETA = "compact-2026-09-04";
/** A retry-after longer than this fails the request instead of holding the task. */
const MAX_RETRY_AFTER_MS = 15 * 60_000;

/** Endpoint as shown in messages and logs: credentials in the URL are hidden. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url.replace(/\/$/, "");
    parsed.username = "***";
    parsed.password = "";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return "(invalid base_url)";
  }
}

type Sdk = typeof import("@anthropic-ai/sdk");
/** Set once the SDK is loaded: an SDK error can only exist after that. */
let sdk: Sdk | undefined;

/**
 * The SDK is the largest module the daemon loads (about a quarter of its start-up), so it is
 * loaded on the first request, not at start: a daemon with nothing to do never needs it.
 */
async function loadSdk(): Promise<Sdk> {
  return (sdk ??= await import("@anthropic-ai/sdk"));
}

export function createModelClient(role: ResolvedRole, apiKey: string, options: ModelClientOptions): ModelClient {
  let client: Anthropic | undefined;
  const connect = async () =>
    (client ??= new (await loadSdk()).default({
      apiKey,
      baseURL: role.baseURL ?? null,
      maxRetries: 0, // retries are ours: they are traced, use the injected clock and honour retry-after
      timeout: options.retry.request_timeout,
    }));
  // The configured request timeout is also the stall limit: a slow local model given 30 minutes
  // must not be cut at 2, and a user who set 30 s must not wait minutes for a dead stream.
  const idleTimeoutMs = options.retry.request_timeout;
  const endpoint = redactUrl(role.baseURL ?? "https://api.anthropic.com");

  const complete = (request: ModelRequest, call: CallOptions = {}) =>
    withRetries(options, endpoint, call, async (signal) => {
      const body = {
        model: role.model,
        max_tokens: request.maxTokens ?? role.max_tokens,
        system: request.system,
        tools: request.tools,
        messages: request.messages,
      };
      const requestBytes = Buffer.byteLength(JSON.stringify(body));
      const started = options.clock.now();
      const attempt = new AbortController();
      const onAbort = () => attempt.abort(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      let cancelIdle = options.clock.setTimer(() => attempt.abort(new IdleTimeout(idleTimeoutMs)), idleTimeoutMs);
      try {
        const stream = (await connect()).messages.stream(body, { signal: attempt.signal });
        for await (const _event of stream) {
          cancelIdle();
          cancelIdle = options.clock.setTimer(() => attempt.abort(new IdleTimeout(idleTimeoutMs)), idleTimeoutMs);
        }
        const message = await stream.finalMessage();
        return {
          model: message.model,
          content: message.content.map(toContentBlock).filter((block) => block !== undefined),
          stopReason: message.stop_reason,
          usage: normalizeUsage(message.usage),
          latencyMs: options.clock.now() - started,
          requestBytes,
        };
      } catch (error) {
        if (attempt.signal.reason instanceof IdleTimeout && !signal.aborted) throw attempt.signal.reason;
        throw error;
      } finally {
        cancelIdle();
        signal.removeEventListener("abort", onAbort);
      }
    });

  const anthropic = /^https:\/\/api\.anthropic\.com\/?$/.test(endpoint);
  const serverCompaction = role.server_compaction === "on" || (role.server_compaction === "auto" && anthropic);
  const toolReferences = role.tool_references === "on" || (role.tool_references === "auto" && anthropic);
  const compact = (request: ModelRequest & { instructions: string }, call: CallOptions = {}) =>
    withRetries(options, endpoint, call, async (signal) => {
      const message = await (await connect()).beta.messages.create(
        {
          model: role.model,
          max_tokens: request.maxTokens ?? role.max_tokens,
          system: request.system,
          tools: request.tools, // the same tools as every step, so the cached prefix still matches
          messages: request.messages as Anthropic.Beta.BetaMessageParam[],
          compaction: { type: "summarize", instructions: request.instructions },
          betas: [COMPACTION_BETA],
        },
        { signal },
      );
      const block = message.content.find((item) => item.type === "compaction");
      if (!block || !block.content) throw new ModelError(`${endpoint} returned no compaction summary (stop_reason ${message.stop_reason})`);
      return { summary: block.content, usage: normalizeUsage(message.usage as Anthropic.Usage) };
    });

  return { model: role.model, role: role.role, toolReferences, complete, ...(serverCompaction ? { compact } : {}) };
}

class IdleTimeout extends Error {
  override name = "IdleTimeout";
  constructor(ms: number) {
    super(`the endpoint sent nothing for ${formatDuration(ms)} (model_retries.request_timeout)`);
  }
}

async function withRetries<T>(options: ModelClientOptions, endpoint: string, call: CallOptions, attemptOnce: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const signal = call.signal ?? new AbortController().signal;
  const { attempts, initial_delay, max_delay } = options.retry;
  for (let attempt = 0; ; attempt++) {
    try {
      signal.throwIfAborted(); // a listener added to an already-aborted signal would never fire
      return await attemptOnce(signal);
    } catch (error) {
      if (signal.aborted) throw signal.reason ?? error;
      const failure = classify(error, endpoint);
      const tooLong = (failure.retryAfterMs ?? 0) > MAX_RETRY_AFTER_MS;
      if (!failure.retryable || attempt >= attempts || tooLong) {
        const tries = attempt + 1;
        const detail = tooLong
          ? ` (asked to wait ${Math.round(failure.retryAfterMs! / 60_000)} minutes; try again later)`
          : failure.retryable ? ` (gave up after ${tries} ${tries === 1 ? "try" : "tries"})` : "";
        throw new ModelError(`${failure.reason}${detail}`, failure.status, { cause: error });
      }
      const backoff = Math.min(max_delay, initial_delay * 2 ** attempt) * (0.8 + Math.random() * 0.4);
      // The server's retry-after wins over our cap: retrying earlier only burns an attempt.
      const delayMs = Math.round(Math.max(failure.retryAfterMs ?? 0, Math.min(max_delay, backoff)));
      call.onRetry?.({ attempt: attempt + 1, delayMs, reason: failure.reason });
      await options.clock.sleep(delayMs, signal);
    }
  }
}

interface Failure {
  retryable: boolean;
  reason: string;
  status?: number;
  retryAfterMs?: number;
}

/** Turns an SDK or network error into what the user and the retry loop need to know. */
export function classify(error: unknown, endpoint: string): Failure {
  if (error instanceof IdleTimeout) return { retryable: true, reason: `${endpoint}: ${error.message}` };
  if (sdk) {
    // Only an SDK that was loaded can have thrown its own errors.
    const { APIConnectionError, APIError, APIUserAbortError } = sdk;
    if (error instanceof APIUserAbortError) return { retryable: false, reason: "request cancelled" };
    if (error instanceof APIConnectionError) {
      const timeout = error.name === "APIConnectionTimeoutError";
      return { retryable: true, reason: timeout ? `${endpoint} did not answer in time` : `cannot reach ${endpoint} (${causeText(error)})` };
    }
    if (error instanceof APIError && typeof error.status === "number") {
      const status = error.status;
      const said = error.apiMessage ?? error.message;
      const retryAfterMs = parseRetryAfter(error.headers?.get("retry-after") ?? null);
      if (status === 429) return { retryable: true, status, retryAfterMs, reason: `${endpoint} is rate limiting requests (429: ${said})` };
      if (status === 529) return { retryable: true, status, retryAfterMs, reason: `${endpoint} is overloaded (529: ${said})` };
      if (status >= 500 || status === 408 || status === 409) return { retryable: true, status, retryAfterMs, reason: `${endpoint} failed (${status}: ${said})` };
      if (status === 401) return { retryable: false, status, reason: `${endpoint} rejected the API key (401: ${said}); check the key in ANTHROPIC_API_KEY or the role's api_key_env` };
      if (status === 403) return { retryable: false, status, reason: `${endpoint} refused the request (403: ${said}); check the key's permissions` };
      if (status === 404) return { retryable: false, status, reason: `${endpoint} does not know this model or path (404: ${said}); check models.*.model and base_url in config.yaml` };
      return { retryable: false, status, reason: `${endpoint} rejected the request (${status}: ${said})` };
    }
  }
  if (error instanceof ModelError) return { retryable: false, reason: error.message };
  // Anything else thrown while reading the stream is a broken stream.
  return { retryable: true, reason: `the response stream from ${endpoint} broke (${(error as Error)?.message ?? String(error)})` };
}

function causeText(error: Error): string {
  const cause = error.cause as { code?: string; message?: string } | undefined;
  return cause?.code ?? cause?.message ?? error.message;
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function normalizeUsage(usage: Partial<Anthropic.Usage> | null | undefined): Usage {
  return {
    input_tokens: usage?.input_tokens ?? 0,
    output_tokens: usage?.output_tokens ?? 0,
    cache_read_input_tokens: usage?.cache_read_input_tokens ?? 0,
    cache_creation_input_tokens: usage?.cache_creation_input_tokens ?? 0,
  };
}

function toContentBlock(block: Anthropic.ContentBlock): ContentBlock | undefined {
  switch (block.type) {
    case "text":
      return { type: "text", text: block.text };
    case "tool_use":
      return { type: "tool_use", id: block.id, name: block.name, input: block.input };
    case "thinking":
      return { type: "thinking", thinking: block.thinking, signature: block.signature };
    case "redacted_thinking":
      return { type: "redacted_thinking", data: block.data };
    default:
      return undefined; // server tool blocks: Nightshift sends no server tools
  }
}
