// `tendril snapshot create -o DIR [--at=yield|yield:N] [run options] GUEST [ARGS]`:
// boot the guest until its Nth blocking yield and write a snapshot that
// `tendril run --restore=DIR` continues from.

import { configureLog } from '../log.js';
import { parseRunArgs } from '../options.js';
import { UsageError } from '../errors.js';
import { parseSnapshotPoint } from '../../loader/snapshot.js';

function usage(): string {
  return `usage: tendril snapshot create -o DIR [--at=yield|yield:N] [ RUN OPTIONS ] GUEST [ ARGS ]
Run GUEST with its devices until the first (or Nth) solo5_yield() whose
deadline lies in the future, write a snapshot of it to the new directory DIR,
and end the guest. \`tendril run --restore=DIR\` starts a new guest from it.

Options:
  -o DIR, --output=DIR    the snapshot directory to create (must not exist)
  --at=yield              the first yield with a deadline in the future (default)
  --at=yield:N            the Nth such yield
RUN OPTIONS are those of \`tendril run\` (--mem, --net:…, --block:…, --x-exec-heap,
--log-level…); --supervise, --gdb, --wait-fifo, --dumpcore and --restore do not apply.`;
}

function parseAt(word: string, value: string): number {
  const n = parseSnapshotPoint(value);
  if (n === undefined) throw new UsageError(`Invalid option: \`${word}': the point must be yield or yield:N (N ≥ 1)`, 'e.g. --at=yield:3', true);
  return n;
}

export async function snapshotVerb(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    (sub === undefined ? process.stderr : process.stdout).write(`${usage()}\n`);
    return sub === undefined ? 1 : 0;
  }
  if (sub !== 'create') throw new UsageError(`unknown snapshot command '${sub}'`, 'use `tendril snapshot create -o DIR GUEST` (or `tendril run --restore=DIR`)');
  let out: string | undefined;
  let at = 1;
  const runArgs: string[] = [];
  let i = 0;
  for (; i < rest.length; i++) {
    const w = rest[i];
    if (w === '--' || !w.startsWith('-') || w === '-') break;
    if (w === '--help' || w === '-h') {
      process.stdout.write(`${usage()}\n`);
      return 0;
    }
    if (w === '-o') {
      if (i + 1 >= rest.length) throw new UsageError("Invalid option: `-o': needs the snapshot directory", 'e.g. -o /var/lib/snapshots/app', true);
      out = rest[++i];
    } else if (w.startsWith('--output=') || w.startsWith('-o=')) {
      out = w.slice(w.indexOf('=') + 1);
    } else if (w.startsWith('--at=')) {
      at = parseAt(w, w.slice(5));
    } else if (['--supervise', '--gdb', '--restore', '--wait-fifo', '--dumpcore'].includes(w.split('=')[0])) {
      throw new UsageError(`Invalid option: \`${w}': not for snapshot create`, 'snapshot create always runs the guest under its own monitor', true);
    } else {
      runArgs.push(w);
    }
  }
  if (!out) throw new UsageError('missing -o DIR: where to write the snapshot', 'e.g. tendril snapshot create -o app.snap app.spt', true);
  const parsed = parseRunArgs([...runArgs, ...rest.slice(i)]);
  if (parsed.kind !== 'run') {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const opts = parsed.options;
  configureLog({ level: opts.logLevel, format: opts.logFormat });
  if (opts.xExecHeap) process.stderr.write('tendril: WARNING: --x-exec-heap: guest heap and stack are executable\n');
  const { createSnapshot } = await import('../snapshot/create.js');
  const r = await createSnapshot({ out, at, run: opts });
  const mib = (b: number) => (b >= 1 << 20 ? `${(b / 1048576).toFixed(1)} MiB` : `${Math.round(b / 1024)} KiB`);
  process.stdout.write(`tendril: snapshot ${out}: ${mib(r.storedBytes)} in ${r.meta.memory.pages} pages of ${Number(r.meta.memSize >> 20n)} MiB guest memory ` +
    `(${mib(r.allocatedBytes)} on disk), yield ${r.meta.point.yield}, ${Math.round(r.totalMs)} ms (guest ${Math.round(r.runMs)} ms to the point, dump ${Math.round(r.dumpMs)} ms)\n`);
  return 0;
}
