import type { Cluster, MachineStatus, SharedTask } from "../runtime/store/pg-cluster.ts";

/**
 * What `nightshift status` and the dashboard's Now page show of several machines on one store:
 * every machine with its heartbeat, and every machine's tasks, each marked when it waits for a
 * machine that went silent or stopped. Types only from the store: `status` loads no npm package.
 */

export interface ClusterView {
  /** This machine's name. */
  machine: string;
  machines: MachineStatus[];
  /** Every machine's queued, running and waiting tasks, oldest first. */
  active: SharedTask[];
  /** The newest tasks of every machine (any state), newest first. */
  recent: SharedTask[];
}

export async function readClusterView(cluster: Pick<Cluster, "machine" | "machines" | "active" | "recent">, recent = 0): Promise<ClusterView> {
  const [machines, active, newest] = await Promise.all([cluster.machines(), cluster.active(), recent > 0 ? cluster.recent(recent) : []]);
  return { machine: cluster.machine, machines, active, recent: newest };
}

export type MachineState = "alive" | "silent" | "stopped";

export const machineState = (machine: MachineStatus): MachineState => (machine.stopped ? "stopped" : machine.alive ? "alive" : "silent");

/** "3 s", "4 min", "2 h", "3 d": how long since a heartbeat. */
export function silence(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86_400)} d`;
}

/** The machine a task is on or must run on: the one that claimed it, else its pin. */
export const machineOf = (task: SharedTask): string | undefined => task.machine ?? task.pin;

/**
 * "waiting for laptop, silent 3 min" (asleep or gone) or "waiting for laptop, stopped": an active
 * task whose machine does not answer. Undefined for one that can go on (its machine is alive, or
 * any machine may claim it).
 */
export function waitingFor(task: SharedTask, machines: MachineStatus[]): string | undefined {
  const name = machineOf(task);
  if (name === undefined || !["queued", "running", "waiting_approval"].includes(task.record.state)) return undefined;
  const machine = machines.find((candidate) => candidate.name === name);
  if (!machine) return `waiting for ${name}, which has never joined`;
  const state = machineState(machine);
  if (state === "alive") return undefined;
  return state === "stopped" ? `waiting for ${name}, stopped` : `waiting for ${name}, silent ${silence(machine.silentMs)}`;
}
