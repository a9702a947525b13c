// The container's init before it becomes the guest: `tendril run` exactly
// (the same verb, options and exec hand-over), started by `tendril-oci
// create` as `node init.js ERRFD RUN-ARGS...`. The one difference is where
// a refusal goes: to ERRFD, a pipe back to `create`, which reports it to
// containerd, instead of fd 2, which belongs to the container (the shim's
// stderr FIFO) and must reach the guest untouched. ERRFD is close-on-exec,
// so `create` sees end-of-file as soon as the stub takes over.

import { writeSync } from 'node:fs';
import { runVerb } from '../verbs/run.js';
import { errorLine } from './errors.js';

const errFd = Number(process.argv[2]);

function fail(e: unknown): number {
  const line = errorLine(e);
  try {
    writeSync(errFd, `${line}\n`);
  } catch {
    process.stderr.write(`tendril: ${line}\n`);
  }
  return 1;
}

try {
  process.exitCode = await runVerb(process.argv.slice(3), 'tendril');
} catch (e) {
  process.exitCode = fail(e);
}
