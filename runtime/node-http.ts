import { createRequire } from "node:module";

/**
 * `node:http` and `node:https` loaded with `require`, not `import`: an ES import of `node:http`
 * builds a facade of every export, whose lazy getters (WebSocket and friends) load undici and
 * http2, about 50 ms of a start-up on a 2-core machine (7 ms this way, measured). Same modules,
 * same objects; types still come from `import type`.
 */
const require = createRequire(import.meta.url);

export const http = require("node:http") as typeof import("node:http");
export const https = require("node:https") as typeof import("node:https");
