export { DEFAULT_MAX_TASK_BYTES, parseTaskFile, readTaskFile, taskFromPrompt } from "./task-file.ts";
export type { TaskFile, TaskFileOptions } from "./task-file.ts";
export { toTaskSpec } from "./spec.ts";
export { createDaemon, type Daemon } from "./daemon.ts";
export { connectDaemon, controlSocketPath, startControlServer, type DaemonClient } from "./control.ts";
export { createInbox, type Inbox } from "./inbox.ts";
export { createScheduler, type Scheduler } from "./schedules.ts";
export { openState, readStateQuietly, type StateStore, type TaskReader, type TaskRecord } from "./state.ts";
export { writeResult } from "./outbox.ts";
