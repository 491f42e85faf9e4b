/**
 * The MCP stdio transport over a process the sandbox started. The library's StdioClientTransport
 * spawns its own child; ours must be spawned by the sandbox (namespaces, mounts, proxy), so this
 * speaks the same framing (one JSON-RPC message per line) over the pipes it is given.
 */

import { ReadBuffer, serializeMessage, type JSONRPCMessage, type Transport } from "@modelcontextprotocol/client";
import type { SandboxedProcess } from "../sandbox/sandbox.ts";

/** The tail of the server's stderr kept for error messages (a server that dies says why there). */
const STDERR_TAIL_BYTES = 4096;

export class SandboxedStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private readonly buffer = new ReadBuffer();
  private stderrTail = "";
  private closed = false;

  private readonly child: SandboxedProcess;

  constructor(child: SandboxedProcess) {
    this.child = child;
  }

  async start(): Promise<void> {
    this.child.stdout.on("data", (chunk: Buffer) => {
      this.buffer.append(chunk);
      for (;;) {
        let message: JSONRPCMessage | null;
        try {
          message = this.buffer.readMessage();
        } catch (error) {
          this.onerror?.(error as Error); // one bad line is reported, the rest still read
          continue;
        }
        if (message === null) break;
        this.onmessage?.(message);
      }
    });
    this.child.stderr.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL_BYTES);
    });
    void this.child.exited.then(() => this.finish());
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) throw new Error("the server has exited");
    const line = serializeMessage(message);
    await new Promise<void>((resolve, reject) => this.child.stdin.write(line, (error) => (error ? reject(error) : resolve())));
  }

  async close(): Promise<void> {
    this.child.stdin.end();
    this.child.kill();
    await this.child.exited;
    this.finish();
  }

  /** What the server wrote on stderr lately, for messages about why it failed. */
  stderr(): string {
    return this.stderrTail;
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffer.clear();
    this.onclose?.();
  }
}
