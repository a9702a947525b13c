import { TendrilError } from '../loader/errors.js';

export { TendrilError, ElfError, ManifestError, PlanError, isTendrilError } from '../loader/errors.js';
export { FilterError } from '../filters/errors.js';

/** A command line that cannot be understood; the usage text follows the message. */
export class UsageError extends TendrilError {
  readonly showUsage: boolean;
  constructor(message: string, hint?: string, showUsage = false) {
    super(message, hint);
    this.showUsage = showUsage;
  }
}

/** A device named on the command line cannot be attached (spec §10, §11, §14). */
export class DeviceError extends TendrilError {}

/** The hand-over to the native stub failed (stub missing, exec failed). */
export class LaunchError extends TendrilError {}

/** Building a guest with `tendril cc` failed. */
export class ToolchainError extends TendrilError {}
