// Every failure tendril reports to a user is one of these. The CLI prints
// `message` (and `hint`, when there is one) on one line and exits 1; the API
// answers with a status chosen by the error's kind; nothing else reaches the
// user, so a message must name what was wrong and where. The loader is the
// lowest room, so the base class lives here and the other rooms extend it.

/**
 * Who can do something about it:
 *  - user: the input (an image, an option, a request) is wrong; fix it;
 *  - capacity: a limit is reached (instances, fds, memory); retry later or raise it;
 *  - environment: the host lacks something (a tool, a permission, a kernel feature);
 *  - internal: a bug in tendril.
 */
export type ErrorKind = 'user' | 'capacity' | 'environment' | 'internal';

export class TendrilError extends Error {
  /** What the user can do about it, printed after the message. */
  readonly hint?: string;
  readonly kind: ErrorKind;
  constructor(message: string, hint?: string, kind?: ErrorKind) {
    super(message);
    this.name = new.target.name;
    this.hint = hint;
    this.kind = kind ?? (new.target as unknown as { defaultKind?: ErrorKind }).defaultKind ?? 'user';
  }
}

/** The guest image is not a loadable spt ELF (abi.md §5.4, §6). */
export class ElfError extends TendrilError {}

/** The guest's manifest (note or JSON) is invalid (abi.md §5.2, §6.1). */
export class ManifestError extends TendrilError {}

/** The guest cannot be planned with the requested settings (memory size,
 *  command line length): the image is fine, the request is not. */
export class PlanError extends TendrilError {}

/** A limit is reached: too many instances, fds or bytes. Retrying later may work. */
export class CapacityError extends TendrilError {
  static readonly defaultKind: ErrorKind = 'capacity';
}

/** The host lacks what tendril needs (a built stub, a kernel feature, a permission). */
export class EnvironmentError extends TendrilError {
  static readonly defaultKind: ErrorKind = 'environment';
}

export function isTendrilError(e: unknown): e is TendrilError {
  return e instanceof TendrilError;
}

/** A snapshot cannot be made, or is not one tendril can restore (missing, corrupt, from another version or machine). */
export class SnapshotError extends TendrilError {}
