// The Node side of `tendril-oci create` for a unikernel, started by the
// native front (native/oci/main.c) after it has parsed runc's command line
// and classified the bundle, as one bundled file (scripts/bundle.js):
//
//   node dist/bundle/tendril-oci-create.cjs --root=DIR --bundle=DIR [--pid-file=F] [--console-socket=S] ID
//
// Its one-line error goes to fd 3, a pipe back to the front, which logs it
// for the shim and prints it; fd 2 is the container's stderr and must stay
// the guest's.

import { writeSync } from 'node:fs';
import * as os from '../os.js';
import { create } from './create.js';
import { isTendrilError } from '../../loader/errors.js';
import { errorLine } from './errors.js';

const ERR_FD = 3;
const FD_CLOEXEC = 1;

function parse(argv: string[]): Parameters<typeof create>[0] {
  const o: Record<string, string> = {};
  const rest: string[] = [];
  for (const a of argv) {
    const m = /^--(root|bundle|pid-file|console-socket)=(.*)$/s.exec(a);
    if (m) o[m[1]] = m[2];
    else rest.push(a);
  }
  if (!o.root || !o.bundle || rest.length !== 1) throw new Error(`create-main: unexpected arguments ${JSON.stringify(argv)}`);
  return { root: o.root, bundle: o.bundle, pidFile: o['pid-file'], consoleSocket: o['console-socket'], id: rest[0] };
}

/** Runs create and ends the process: 0, or 1 with the error line on fd 3. */
export async function createMain(argv: string[]): Promise<never> {
  // The pipe must reach no one else (ip and tc for a pod network, the stub): only this process may hold it open.
  os.fcntl(ERR_FD, os.F_SETFD, FD_CLOEXEC);
  try {
    await create(parse(argv));
    process.exit(0);
  } catch (e) {
    const line = errorLine(e);
    try {
      writeSync(ERR_FD, `${line}\n`);
    } catch {
      process.stderr.write(`tendril-oci: ${line}\n`);
    }
    if (!isTendrilError(e) && process.env.TENDRIL_DEBUG) process.stderr.write(`${(e as Error)?.stack}\n`);
    process.exit(1);
  }
}
