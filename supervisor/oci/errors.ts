// tendril-oci's failures. Each is reported as one line on stderr and, when
// the caller gave --log, as a JSON record of level "error", which is where
// containerd's shim reads the message it shows (e.g. "OCI runtime create
// failed: <message>"). Messages name the container, the bundle field or the
// annotation at fault.

import { TendrilError } from '../../loader/errors.js';

/** config.json asks for something tendril cannot honour, or is malformed. */
export class BundleError extends TendrilError {}

/** A lifecycle command cannot be carried out (no such container, wrong state). */
export class ContainerError extends TendrilError {}

export { errorLine } from '../errors.js';
