// The API's errors and the HTTP status each kind of failure gets. Every
// reply to a failed request is {"error": one line, "hint"?: what to do,
// "kind": user|capacity|environment|internal}; the message names JSON
// fields, not command-line options.

import { ElfError, ManifestError, TendrilError, type ErrorKind } from '../errors.js';
import { DeviceError } from '../errors.js';
import { CapacityError } from '../../loader/errors.js';

/** The request itself is malformed or asks for something impossible (400). */
export class RequestError extends TendrilError {}
/** No such image, instance or snapshot (404). */
export class NotFoundError extends TendrilError {}
/** The request conflicts with the object's state, e.g. deleting a running instance (409). */
export class ConflictError extends TendrilError {}
/** A body or an image larger than the server accepts (413). */
export class TooLargeError extends TendrilError {}
/** Too many instances or launches at once (429): retry later. */
export class BusyError extends CapacityError {}

/** The status for an error: by its class where one is specific, else by its kind. */
export function httpStatus(e: unknown): number {
  if (e instanceof NotFoundError) return 404;
  if (e instanceof ConflictError) return 409;
  if (e instanceof TooLargeError) return 413;
  if (e instanceof BusyError) return 429;
  // The request was understood, but its image or device cannot be used.
  if (e instanceof ElfError || e instanceof ManifestError || e instanceof DeviceError) return 422;
  if (e instanceof TendrilError) return ({ user: 400, capacity: 503, environment: 503, internal: 500 } as Record<ErrorKind, number>)[e.kind];
  return 500;
}

export function errorBody(e: unknown): { error: string; hint?: string; kind: ErrorKind } {
  if (e instanceof TendrilError) return { error: e.message, ...(e.hint ? { hint: e.hint } : {}), kind: e.kind };
  return { error: `internal error: ${(e as Error)?.message ?? String(e)}`, hint: 'this is a bug in tendril; please report it', kind: 'internal' };
}
