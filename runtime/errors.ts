/**
 * The few error classes Nightshift raises on purpose. Each carries what the user needs to fix the
 * problem; the CLI prints `message` alone (no stack) for these. Messages never contain secrets.
 */

export class ConfigError extends Error {
  override name = "ConfigError";
  /** Dotted path of the setting at fault, e.g. `models.main.model`, or the variable name. */
  readonly setting: string;
  constructor(setting: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.setting = setting;
  }
}

export class TaskFileError extends Error {
  override name = "TaskFileError";
  readonly file: string;
  readonly line: number | undefined;
  readonly field: string | undefined;
  constructor(file: string, message: string, where: { line?: number; field?: string } = {}) {
    super(message);
    this.file = file;
    this.line = where.line;
    this.field = where.field;
  }
}

/** A tool input reached something the policy forbids. The message is shown to the model. */
export class PermissionDenied extends Error {
  override name = "PermissionDenied";
}

export class SandboxUnavailable extends Error {
  override name = "SandboxUnavailable";
}

/** Another live process is writing this session's log. */
export class SessionBusy extends Error {
  override name = "SessionBusy";
}

/** The model endpoint failed after every retry. */
export class ModelError extends Error {
  override name = "ModelError";
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: ErrorOptions) {
    super(message, options);
    this.status = status;
  }
}

/** An MCP server did not start or answer; the message carries the end of its stderr. */
export class McpServerFailed extends Error {
  override name = "McpServerFailed";
  readonly server: string;
  constructor(server: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.server = server;
  }
}

/** A user-facing error: the CLI prints the message without a stack. */
export function isUserError(error: unknown): error is Error {
  return (
    error instanceof ConfigError ||
    error instanceof TaskFileError ||
    error instanceof SandboxUnavailable ||
    error instanceof SessionBusy ||
    error instanceof McpServerFailed ||
    error instanceof ModelError
  );
}

/** Abort reason meaning "stop for now, resume later" (daemon shutdown), as opposed to a cancel. */
export class Shutdown extends Error {
  override name = "Shutdown";
}
