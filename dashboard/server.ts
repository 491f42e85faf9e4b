import { createAdaptorServer } from "@hono/node-server";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface DashboardServer {
  /** The port it listens on (useful when asked for port 0). */
  port: number;
  close(): Promise<void>;
}

/** Why the dashboard could not listen, said in one line naming the setting. */
export class DashboardUnavailable extends Error {
  override name = "DashboardUnavailable";
}

/**
 * Serves `fetch` on 127.0.0.1 only, never on every interface: whoever reaches it from elsewhere
 * comes through a tunnel the person set up, and still meets the login.
 */
export function serveDashboard(fetch: (request: Request) => Response | Promise<Response>, port: number): Promise<DashboardServer> {
  const server = createAdaptorServer({ fetch, hostname: "127.0.0.1" }) as Server;
  return new Promise((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      const why = error.code === "EADDRINUSE" ? `port ${port} on 127.0.0.1 is in use` : `cannot listen on 127.0.0.1:${port} (${error.code ?? error.message})`;
      reject(new DashboardUnavailable(`dashboard not started: ${why}; set dashboard.port in config.yaml to a free port`));
    });
    server.listen(port, "127.0.0.1", () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
