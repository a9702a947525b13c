import { EnvironmentError, TendrilError } from '../loader/errors.js';

export { CapacityError, EnvironmentError, TendrilError, ElfError, ManifestError, PlanError, SnapshotError, isTendrilError, type ErrorKind } from '../loader/errors.js';
export { FilterError } from '../filters/errors.js';

/** A command line that cannot be understood; the usage text follows the message. */
export class UsageError extends TendrilError {
  readonly showUsage: boolean;
  constructor(message: string, hint?: string, showUsage = false) {
    super(message, hint);
    this.showUsage = showUsage;
  }
}

/** A device named on the command line cannot be attached (abi.md §10, abi.md §11, abi.md §14). */
export class DeviceError extends TendrilError {}

/** The hand-over to the native stub failed (stub missing, exec failed), or a server cannot be reached. */
export class LaunchError extends EnvironmentError {}

/** --isolate=strict on a host that lacks a layer, or a jail the stub cannot be given. */
export class IsolationError extends EnvironmentError {}

/** Building a guest with `tendril cc` failed. */
export class ToolchainError extends TendrilError {}

/**
 * Control characters in a message are shown escaped: messages quote
 * untrusted text (device names from a guest image, paths, option words,
 * annotations), and a newline or escape sequence in it must not break the
 * one-line error or reach the terminal raw.
 */
export function escapeControl(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** The one line a failure is reported as: a TendrilError's message and hint, or an internal error. */
export function errorLine(e: unknown): string {
  if (e instanceof TendrilError) return escapeControl(`${e.message}${e.hint ? `; ${e.hint}` : ''}`);
  return `internal error: ${escapeControl((e as Error)?.message ?? String(e))}; please report this bug`;
}
