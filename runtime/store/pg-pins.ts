/**
 * MCP tool approvals when several machines share one PostgreSQL (issue 16): every definition of a
 * server's tool a person approved, on any machine (`nightshift mcp approve`, Telegram's Approve),
 * keyed by server, tool and the definition's hash (runtime/mcp/pins.ts `toolHash`). Each machine
 * reads the rows of the tools its server offers at the check (runtime/mcp/pins.ts `currentPins`),
 * so one approval counts on every machine, and a definition nobody approved still asks.
 * Rows are added by approvals only: they grow with what a person approved, not with use.
 */

import type { ApprovedPin, PinnedDefinition, SharedPins } from "../mcp/pins.ts";
import type { Sql } from "./pg.ts";

export function sharedPins(sql: Sql, machine: string): SharedPins {
  return {
    async approved(server, tools) {
      if (tools.length === 0) return [];
      const rows = await sql<Array<{ tool: string; hash: string; definition: PinnedDefinition; approved: Date }>>`
        SELECT tool, hash, definition, approved FROM mcp_pins WHERE server = ${server} AND tool = ANY(${tools as string[]}) ORDER BY approved, tool`;
      return rows.map((row): ApprovedPin => ({ tool: row.tool, hash: row.hash, definition: row.definition, approvedAt: row.approved.toISOString() }));
    },
    async approve(server, pins) {
      if (pins.length === 0) return;
      await sql`
        INSERT INTO mcp_pins ${sql(pins.map((pin) => ({ server, tool: pin.tool, hash: pin.hash, definition: sql.json(pin.definition as never), approved: new Date(pin.approvedAt), machine })))}
        ON CONFLICT (server, tool, hash) DO NOTHING`;
    },
  };
}
