/**
 * The host side of the sandbox's network: an HTTP proxy on a Unix socket that asks a callback about
 * every request and only then connects, for `CONNECT host:port` tunnels (HTTPS and anything else
 * over TCP) and absolute-form plain HTTP requests (`GET http://host:port/path`).
 *
 * Why not the proxy of @anthropic-ai/sandbox-runtime: its ask callback is told a host and port but
 * not which command asked, while our decision is per session (task grants, approvals that wait for
 * a human). So even the srt backend (srt.ts) sends its commands here, as srt's "external" proxy, on
 * the TCP port. Under bwrap the proxy starts once per process, and a run pays only for a bind mount
 * and a `socat` relay inside its sandbox (see bwrap.ts).
 *
 * Which run is asking: the server is shared, so each run registers and gets a random token, which
 * the sandbox receives inside its proxy URL (`http://nightshift:<token>@127.0.0.1:3128`). Clients
 * send URL credentials as `Proxy-Authorization: Basic base64(nightshift:<token>)` on every request
 * and CONNECT; the proxy maps the token back to the run's sessionKey. A request without a live token
 * gets 407 and no decision. Unregistering ends the token and every connection made with it.
 *
 * The proxy connects from the host: allowing `localhost` or a private address reaches the host's own
 * services, so the decision callback, not this file, must refuse those unless they are meant.
 * Contracts: never throws on client input (resets, garbage, early hang-ups); never logs; never puts
 * a token in a response or an error.
 */

import { randomBytes } from "node:crypto";
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { http } from "../node-http.ts";

const { Agent, createServer, request: httpRequest } = http;
import { connect } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { dirname } from "node:path";
import type { Duplex } from "node:stream";

export interface NetworkRequest {
  /** Lower-case host name or IP address, without brackets or a trailing dot. */
  host: string;
  port: number;
  /** The sessionKey the run registered with. */
  sessionKey: string;
  /** Aborted when the client hangs up, its run unregisters or the proxy closes: a pending approval can be dropped. */
  signal: AbortSignal;
}

export interface NetworkDecision {
  allow: boolean;
  /** One line shown to the client when denied (`Nightshift blocked <host>: <reason>`). */
  reason: string;
  /**
   * The address the decision checked, when it resolved the name: the proxy connects there, not to
   * the name, so a second lookup (a DNS answer that changed in between) cannot lead elsewhere.
   */
  address?: string;
  /**
   * Cuts the connection when it aborts: an allowance that lasts as long as something else (an MCP
   * tool call), so a kept-alive tunnel cannot outlive the task that allowed it.
   */
  until?: AbortSignal;
}

export interface NetworkProxyOptions {
  /** Where to listen; the folder is created with mode 0700 when missing, the socket gets 0600. */
  socketPath: string;
  /**
   * Also listen on 127.0.0.1 at a free port, for a sandbox that can only point commands at a TCP
   * port (sandbox-runtime: Seatbelt on macOS allows one loopback port). Any local process can
   * connect there, unlike the 0600 socket; without a live run token it only ever gets 407.
   */
  tcp?: boolean;
  /** Awaited once per request; may take minutes. A rejection counts as a denial. */
  decide(request: NetworkRequest): Promise<NetworkDecision>;
}

export interface ProxyRegistration {
  /** Goes into the run's proxy URL as the password; opaque, URL-safe. */
  token: string;
  /** Ends the token and destroys every connection made with it. Idempotent. */
  unregister(): void;
}

export interface NetworkProxy {
  socketPath: string;
  /** The 127.0.0.1 port, when started with `tcp`. */
  tcpPort?: number;
  /** Called at the start of each run that may use the network. */
  register(sessionKey: string): ProxyRegistration;
  /** Stops listening, ends every connection and removes the socket file. */
  close(): Promise<void>;
}

interface Run {
  sessionKey: string;
  /** Client sockets that presented this run's token, ended on unregister. */
  sockets: Set<Duplex>;
  controller: AbortController;
}

/** RFC 9110 hop-by-hop headers, plus the legacy ones clients still send. `proxy-*` is dropped too. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "expect"]);
const PROXY_REALM = 'Basic realm="nightshift"';
/** A request waiting for its decision holds only its socket; headers must still arrive promptly. */
const HEADERS_TIMEOUT_MS = 30_000;
/** Bytes a client may send through a CONNECT before the tunnel opens (a TLS hello is well below). */
const MAX_EARLY_BYTES = 64 * 1024;
/** A refused client that never hangs up is cut off after this long. */
const LINGER_MS = 10_000;

export async function startNetworkProxy(options: NetworkProxyOptions): Promise<NetworkProxy> {
  const runs = new Map<string, Run>();
  const closing = new AbortController();
  const upstreamAgent = new Agent({ keepAlive: true });
  const openSockets = new Set<Duplex>();

  // No request timeout: a request may wait minutes for its decision. The target names the host, so
  // a missing Host header is no reason to refuse.
  const serve = () => {
    const server = createServer({ requestTimeout: 0, headersTimeout: HEADERS_TIMEOUT_MS, requireHostHeader: false });
    server.on("connection", (socket: Socket) => {
      openSockets.add(socket);
      socket.once("close", () => openSockets.delete(socket));
    });
    server.on("clientError", (_error, socket: Duplex) => refuseRaw(socket, 400, "Bad Request", "Nightshift proxy: malformed request"));
    server.on("request", (request: IncomingMessage, response: ServerResponse) => {
      handleHttp(request, response).catch(() => response.destroy());
    });
    server.on("connect", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on("error", () => socket.destroy());
      handleConnect(request, socket, head).catch(() => socket.destroy());
    });
    // Upgrade requests (WebSocket over plain HTTP) are not forwarded; clients tunnel those with CONNECT.
    server.on("upgrade", (_request, socket: Duplex) => refuseRaw(socket, 501, "Not Implemented", "Nightshift proxy: use CONNECT for upgrades"));
    return server;
  };
  const server = serve();
  const tcpServer = options.tcp ? serve() : undefined;

  /** The run behind a request's Proxy-Authorization, or undefined when it carries no live token. */
  function runOf(request: IncomingMessage): Run | undefined {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(request.headers["proxy-authorization"] ?? "");
    if (!match) return undefined;
    const credentials = Buffer.from(match[1] as string, "base64").toString("utf8");
    const colon = credentials.indexOf(":");
    return colon < 0 ? undefined : runs.get(credentials.slice(colon + 1));
  }

  /** Asks the callback; a failure to decide is a denial whose reason says nothing about the failure. */
  async function decide(run: Run, target: Target, client: Duplex): Promise<NetworkDecision> {
    const controller = new AbortController();
    const abort = () => controller.abort();
    const signal = AbortSignal.any([controller.signal, run.controller.signal, closing.signal]);
    client.once("close", abort);
    try {
      return await options.decide({ host: target.host, port: target.port, sessionKey: run.sessionKey, signal });
    } catch {
      return { allow: false, reason: "the network policy could not decide" };
    } finally {
      client.off("close", abort);
    }
  }

  function track(run: Run, socket: Duplex): void {
    run.sockets.add(socket);
    socket.once("close", () => run.sockets.delete(socket));
  }

  async function handleConnect(request: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    const run = runOf(request);
    if (!run) return refuseRaw(client, 407, "Proxy Authentication Required", "Nightshift proxy: missing or unknown run token", [["Proxy-Authenticate", PROXY_REALM]]);
    track(run, client);
    const target = parseConnectTarget(request.url ?? "");
    if (!target) return refuseRaw(client, 400, "Bad Request", "Nightshift proxy: CONNECT needs host:port");
    // The HTTP server no longer watches this socket: until the tunnel opens, read it ourselves, so
    // a hang-up is seen (and the pending decision aborted) and bytes sent early are kept for upstream.
    const early: Buffer[] = head.length > 0 ? [head] : [];
    let earlyBytes = head.length;
    const hold = (chunk: Buffer): void => {
      early.push(chunk);
      earlyBytes += chunk.length;
      if (earlyBytes > MAX_EARLY_BYTES) client.destroy();
    };
    const gaveUp = (): void => void client.destroy();
    client.on("data", hold);
    client.once("end", gaveUp);
    const decision = await decide(run, target, client);
    if (client.destroyed) return;
    if (!decision.allow) {
      client.off("end", gaveUp);
      return refuseRaw(client, 403, "Forbidden", blockedText(target.host, decision.reason), [["X-Nightshift-Blocked", oneLine(decision.reason)]]);
    }

    const upstream = connect({ host: decision.address ?? target.host, port: target.port });
    track(run, upstream);
    const until = decision.until;
    if (until) {
      const cut = () => {
        upstream.destroy();
        client.destroy();
      };
      if (until.aborted) cut();
      else {
        until.addEventListener("abort", cut, { once: true });
        client.once("close", () => until.removeEventListener("abort", cut));
      }
    }
    let connected = false;
    upstream.once("connect", () => {
      connected = true;
      client.off("data", hold);
      client.off("end", gaveUp);
      client.pause(); // pipe() below resumes it; nothing is emitted in between
      upstream.setNoDelay(true);
      for (const chunk of early) upstream.write(chunk);
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.once("error", (error: NodeJS.ErrnoException) => {
      if (connected) return void client.destroy();
      client.off("end", gaveUp);
      refuseRaw(client, 502, "Bad Gateway", unreachableText(target, error));
    });
    // pipe() forwards each side's end; a reset on either side ends both.
    upstream.once("close", () => {
      if (connected) client.end();
    });
    client.once("close", () => upstream.destroy());
  }

  async function handleHttp(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const client = request.socket;
    const run = runOf(request);
    if (!run) {
      return refuseHttp(response, 407, "Nightshift proxy: missing or unknown run token", { "Proxy-Authenticate": PROXY_REALM });
    }
    track(run, client);
    const target = parseAbsoluteTarget(request.url ?? "");
    if (!target) return refuseHttp(response, 400, "Nightshift proxy: send absolute-form requests (GET http://host/path)");
    const decision = await decide(run, target, client);
    if (client.destroyed) return;
    if (!decision.allow) {
      return refuseHttp(response, 403, blockedText(target.host, decision.reason), { "X-Nightshift-Blocked": oneLine(decision.reason) });
    }

    const upstream = httpRequest({
      agent: upstreamAgent,
      host: decision.address ?? target.host,
      port: target.port,
      method: request.method,
      path: target.path,
      headers: forwardedHeaders(request.rawHeaders, request.headers.connection, target.hostHeader),
      setHost: false,
      signal: run.controller.signal,
    });
    upstream.once("response", (answer) => {
      answer.once("error", () => response.destroy());
      try {
        response.writeHead(answer.statusCode ?? 502, answer.statusMessage, forwardedHeaders(answer.rawHeaders, answer.headers.connection));
      } catch {
        // A header Node refuses to send on: give up on this response rather than throw from an event.
        upstream.destroy();
        return void refuseHttp(response, 502, `Nightshift proxy: ${target.host} sent an invalid response`);
      }
      answer.pipe(response);
    });
    upstream.once("error", (error: NodeJS.ErrnoException) => {
      if (response.headersSent) response.destroy();
      else refuseHttp(response, 502, unreachableText(target, error));
    });
    response.once("close", () => {
      if (!response.writableFinished) upstream.destroy();
    });
    request.pipe(upstream);
  }

  await listen(server, options.socketPath);
  const tcpPort = tcpServer ? await listenTcp(tcpServer) : undefined;

  return {
    socketPath: options.socketPath,
    ...(tcpPort !== undefined ? { tcpPort } : {}),
    register(sessionKey) {
      const token = randomBytes(24).toString("base64url");
      const run: Run = { sessionKey, sockets: new Set(), controller: new AbortController() };
      runs.set(token, run);
      return {
        token,
        unregister() {
          if (runs.get(token) !== run) return;
          runs.delete(token);
          run.controller.abort();
          for (const socket of run.sockets) socket.destroy();
        },
      };
    },
    async close() {
      closing.abort();
      for (const run of runs.values()) for (const socket of run.sockets) socket.destroy();
      runs.clear();
      const closed = [server, tcpServer].map((each) => new Promise<void>((resolve) => (each ? each.close(() => resolve()) : resolve())));
      for (const socket of openSockets) socket.destroy();
      upstreamAgent.destroy();
      await Promise.all(closed);
      removeSocketFile(options.socketPath);
    },
  };
}

interface Target {
  host: string;
  port: number;
  /** For plain HTTP: origin-form path and query, and the Host header upstream sees. */
  path: string;
  hostHeader: string;
}

/** `host:port` or `[v6]:port`, nothing else. */
function parseConnectTarget(authority: string): Target | undefined {
  if (!/^(\[[0-9A-Fa-f:.]+\]|[^\s/?#@[\]:]+):\d{1,5}$/.test(authority)) return undefined;
  return targetOf(`http://${authority}`);
}

/** `http://host[:port]/path?query` only: other schemes, userinfo and origin-form are refused. */
function parseAbsoluteTarget(url: string): Target | undefined {
  return /^http:\/\//i.test(url) ? targetOf(url) : undefined;
}

function targetOf(href: string): Target | undefined {
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    return undefined;
  }
  if (url.username || url.password || url.hostname === "") return undefined;
  // The URL parser lower-cases, applies IDNA and canonicalises IPv4 forms (0x7f.1 → 127.0.0.1), so
  // the decision sees the address that will really be dialled. A trailing dot names the same host.
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  const port = Number(url.port || 80);
  if (!host || port < 1 || port > 65535) return undefined;
  return { host, port, path: `${url.pathname}${url.search}`, hostHeader: url.host };
}

/**
 * Raw headers minus hop-by-hop ones, `Proxy-*`, and those the Connection header lists. The upstream
 * Host comes from the request target, never from the client's Host header, so a denied virtual host
 * cannot ride on an allowed address.
 */
function forwardedHeaders(raw: readonly string[], connection: string | undefined, hostHeader?: string): string[] {
  const listed = new Set((connection ?? "").split(",").map((name) => name.trim().toLowerCase()));
  const kept: string[] = hostHeader === undefined ? [] : ["Host", hostHeader];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(name) || listed.has(name) || name.startsWith("proxy-")) continue;
    if (hostHeader !== undefined && name === "host") continue;
    kept.push(raw[i] as string, raw[i + 1] as string);
  }
  return kept;
}

function blockedText(host: string, reason: string): string {
  return `Nightshift blocked ${oneLine(host)}: ${oneLine(reason)}`;
}

function unreachableText(target: Target, error: NodeJS.ErrnoException): string {
  return `Nightshift proxy could not reach ${target.host}:${target.port}: ${error.code ?? "connection failed"}`;
}

/** Safe in a header and on one line: no control characters, Latin-1 only, bounded. */
function oneLine(text: string): string {
  return text.replace(/[^\x20-\x7e\xa0-\xff]+/g, " ").trim().slice(0, 300) || "denied";
}

function refuseHttp(response: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (response.headersSent || response.destroyed) return void response.destroy();
  const body = `${text}\n`;
  response.writeHead(status, { ...headers, "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(body) });
  response.end(body);
}

/**
 * A complete response written straight to a socket the HTTP server no longer manages, then closed.
 * Whatever the client still sends is read and dropped: closing with unread input would send a reset,
 * which can make the client lose the response.
 */
function refuseRaw(socket: Duplex, status: number, statusText: string, text: string, headers: [string, string][] = []): void {
  if (socket.destroyed || !socket.writable) return void socket.destroy();
  socket.resume();
  socket.once("end", () => socket.destroy());
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
  const body = `${text}\n`;
  const head = [
    `HTTP/1.1 ${status} ${statusText}`,
    ...headers.map(([name, value]) => `${name}: ${value}`),
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Connection: close",
  ].join("\r\n");
  socket.end(`${head}\r\n\r\n${body}`);
}

async function listen(server: ReturnType<typeof createServer>, socketPath: string): Promise<void> {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
  removeSocketFile(socketPath); // left by a process that crashed; a live one would be replaced too
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  chmodSync(socketPath, 0o600);
}

async function listenTcp(server: ReturnType<typeof createServer>): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** Removes a socket file; anything else at that path is left alone (listen then fails with EADDRINUSE). */
function removeSocketFile(socketPath: string): void {
  try {
    if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath);
  } catch {
    // Missing already.
  }
}
