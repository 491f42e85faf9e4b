export type { RunOptions, RunResult, Sandbox, SandboxProbe, StagedView } from "./sandbox.ts";
export type { BwrapSandboxOptions, UnsandboxedOptions } from "./bwrap.ts";
export { createBwrapSandbox, createUnsandboxed } from "./bwrap.ts";
export type { SrtSandboxOptions } from "./srt.ts";
export { createSrtSandbox } from "./srt.ts";
export { scrubEnv } from "./spawn.ts";
export { startNetworkProxy, type NetworkDecision, type NetworkProxy, type NetworkRequest } from "./proxy.ts";
