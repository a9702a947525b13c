// Every failure tendril reports to a user is one of these. The CLI prints
// `message` (and `hint`, when there is one) on one line and exits 1; nothing
// else reaches the terminal, so a message must name what was wrong and where.
// The loader is the lowest room, so the base class lives here and the other
// rooms extend it.

export class TendrilError extends Error {
  /** What the user can do about it, printed after the message. */
  readonly hint?: string;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = new.target.name;
    this.hint = hint;
  }
}

/** The guest image is not a loadable spt ELF (abi.md §5.4, abi.md §6). */
export class ElfError extends TendrilError {}

/** The guest's manifest (note or JSON) is invalid (abi.md §5.2, abi.md §6.1). */
export class ManifestError extends TendrilError {}

/** The guest cannot be planned with the requested settings (memory size,
 *  command line length): the image is fine, the request is not. */
export class PlanError extends TendrilError {}

export function isTendrilError(e: unknown): e is TendrilError {
  return e instanceof TendrilError;
}
