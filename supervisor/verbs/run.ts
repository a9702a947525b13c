// `tendril run` / `tendril-spt`: validate, attach, compile, then become the guest.

import { basename } from 'node:path';
import { version } from '../cli.js';
import { execStub, prepareCoreDumps, prepareLaunch } from '../launch.js';
import { parseRunArgs, runUsage } from '../options.js';

export function runVerb(argv: string[], prog: string): number {
  const name = prog === 'tendril' ? 'tendril run' : prog;
  const parsed = parseRunArgs(argv);
  if (parsed.kind === 'help') {
    process.stderr.write(`${runUsage(name)}\n`);
    return 1;
  }
  if (parsed.kind === 'version') {
    process.stderr.write(`tendril tender, version ${version()}\nABI version 2\n`);
    return 0;
  }
  const opts = parsed.options;
  if (opts.xExecHeap) process.stderr.write(`${prog}: WARNING: --x-exec-heap: guest heap and stack are executable\n`);
  const prepared = prepareLaunch(opts);
  if (opts.dumpcore) prepareCoreDumps(opts.dumpcore);
  if (opts.gdb) {
    // exec keeps the PID, so this is the pid the debugger attaches to.
    process.stderr.write(`${prog}: guest loaded and stopped before its first instruction (pid ${process.pid}); ` +
      `attach with: gdb ${opts.guest} -p ${process.pid}  (then 'continue')\n`);
  }
  return execStub(prepared, `tendril: ${basename(opts.guest)}`);
}
