/**
 * The fetch a remote MCP server's transport uses: the private-address guard of `web_fetch`. Each
 * request resolves the server's host, refuses loopback, private, link-local and metadata addresses
 * (config may let this server be on this machine or the local network, never on a link-local
 * address, where cloud metadata answers), and connects to exactly the addresses
 * it checked, so DNS cannot change between check and connect. Redirects are not followed.
 */

import { lookup as dnsLookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { Readable } from "node:stream";
import { blockedAddressReason, pinnedLookup } from "../tools/web-fetch.ts";

export interface GuardOptions {
  /** The server's config field, for messages. */
  field: string;
  /** `allow_private_network: true` in the server's config. */
  allowPrivate: boolean;
  /** For tests: resolve names (default dns.lookup). */
  lookup?: (host: string) => Promise<string[]>;
}

export class PrivateAddressRefused extends Error {
  override name = "PrivateAddressRefused";
}

export function guardedFetch(options: GuardOptions): (url: string | URL, init?: RequestInit) => Promise<Response> {
  const resolve = options.lookup ?? (async (host: string) => (await dnsLookup(host, { all: true })).map((entry) => entry.address));
  return async (target, init = {}) => {
    const url = new URL(target);
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const addresses = isIP(host) ? [host] : await resolve(host);
    if (addresses.length === 0) throw new Error(`${host} does not resolve`);
    for (const address of addresses) {
      const why = blockedAddressReason(address);
      if (!why) continue;
      const what = address === host ? `${host} is ${why}` : `${host} resolves to ${address}, ${why}`;
      // Link-local addresses stay refused even when allowed: cloud metadata services answer there.
      if (/link-local/.test(why)) throw new PrivateAddressRefused(`${what}; remote MCP servers never reach link-local addresses`);
      if (!options.allowPrivate) throw new PrivateAddressRefused(`${what}; remote MCP servers are refused on this machine and its network unless ${options.field}.allow_private_network is true`);
    }
    return send(url, addresses, init);
  };
}

function send(url: URL, addresses: string[], init: RequestInit): Promise<Response> {
  const headers = Object.fromEntries(new Headers(init.headers).entries());
  const body = init.body;
  if (body !== undefined && body !== null && typeof body !== "string" && !(body instanceof Uint8Array)) {
    return Promise.reject(new TypeError("guardedFetch sends string or byte bodies only"));
  }
  return new Promise((resolve, reject) => {
    const request = (url.protocol === "https:" ? https : http).request(url, {
      method: init.method ?? "GET",
      headers,
      agent: false,
      lookup: pinnedLookup(addresses),
      ...(init.signal ? { signal: init.signal } : {}),
    });
    request.once("error", reject);
    request.once("response", (response) => {
      const status = response.statusCode ?? 502;
      const out = new Headers();
      for (const [name, value] of Object.entries(response.headers)) {
        if (Array.isArray(value)) for (const item of value) out.append(name, item);
        else if (value !== undefined) out.set(name, value);
      }
      const empty = status === 204 || status === 304 || init.method === "HEAD";
      if (empty) response.resume();
      resolve(new Response(empty ? null : (Readable.toWeb(response) as ReadableStream), { status, statusText: response.statusMessage ?? "", headers: out }));
    });
    request.end(body ?? undefined);
  });
}
