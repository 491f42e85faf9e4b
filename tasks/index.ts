export { DEFAULT_MAX_TASK_BYTES, parseTaskFile, readTaskFile, taskFromPrompt } from "./task-file.ts";
export type { TaskFile, TaskFileOptions } from "./task-file.ts";
export { toTaskSpec } from "./spec.ts";
