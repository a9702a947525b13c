// The `run` command line, in solo5-spt's syntax (abi.md §14) but strict: every
// value is checked in full (no sscanf-style trailing junk, abi.md §17 D6) and out of
// range values are errors, not crashes (abi.md §17 D5). Options come before GUEST;
// every word after GUEST belongs to the guest.

import { DEFAULT_MEM_MIB, MAX_MEM_MIB } from '../loader/abi.js';
import { DEVICE_NAME_RE } from '../loader/manifest.js';
import { UsageError } from './errors.js';
import { LEVELS, type LogFormat, type LogLevel } from './log.js';
import type { IsolateOptions } from './isolate/jail.js';

export interface NetRequest {
  kind: 'net';
  name: string;
  /** How messages name the request when it did not come from the command line (the API: "devices.NAME"). */
  label?: string;
  /** Interface name, or a pre-opened tap fd (`@FD`). */
  iface?: string;
  fd?: number;
  mac?: Buffer;
}

export interface BlockRequest {
  kind: 'block';
  name: string;
  label?: string;
  path?: string;
  fd?: number;
  readOnly: boolean;
  sectorSize?: number;
}

export type DeviceRequest = NetRequest | BlockRequest;

/** The request as the user wrote it, for messages: the option word, or the API field. */
export function deviceLabel(req: DeviceRequest): string {
  if (req.label) return req.label;
  if (req.kind === 'net') return `--net:${req.name}=${req.fd !== undefined ? `@${req.fd}` : req.iface}`;
  return `--block${req.readOnly ? '-ro' : ''}:${req.name}=${req.fd !== undefined ? `@${req.fd}` : req.path}`;
}

export interface RunOptions {
  memMiB: number;
  xExecHeap: boolean;
  guest: string;
  guestArgs: string[];
  devices: DeviceRequest[];
  /** Extra tendril options (not in solo5-spt). */
  dumpable: boolean;
  /** --dumpcore=DIR: a guest killed by a signal leaves DIR/core for gdb. */
  dumpcore?: string;
  /** --gdb: stop before the guest's first instruction until a debugger continues it. */
  gdb: boolean;
  /** --supervise: keep a supervisor process that reports how the guest ended. */
  supervise: boolean;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  /** --wait-fifo=PATH: hold the loaded guest until a byte is written to PATH (tendril-oci's create/start). */
  waitFifo?: string;
  /** --isolate[=strict] and its options: the guest runs jailed (supervisor/isolate/). */
  isolate?: IsolateOptions;
  /** --restore=DIR: continue from a snapshot (supervisor/snapshot/restore.ts); no GUEST operand then. */
  restore?: string;
  /** --record=FILE: run for real and record the execution for `tendril replay` (docs/record-replay.md). */
  record?: string;
  /** The request came from the API: messages name JSON fields ("memMiB", "devices.NAME"), not options. */
  api?: boolean;
}

export type ParsedRun = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; options: RunOptions };

function invalid(word: string, why: string, hint?: string): UsageError {
  return new UsageError(`Invalid option: \`${word}': ${why}`, hint, true);
}

/** --uid=N / --gid=N: an unprivileged id (0 would keep root's ownership of everything). */
function parseId(word: string, value: string): number {
  if (!/^[0-9]{1,10}$/.test(value) || Number(value) > 0xfffffffe) throw invalid(word, 'an id must be a number from 1 to 4294967294');
  if (Number(value) === 0) throw invalid(word, 'id 0 is root, which owns the host\'s files', 'choose an id that owns nothing, or leave it out for the default');
  return Number(value);
}

/** --cpus=N: a CPU quota, 0.01 to 1024 CPUs. */
function parseCpus(word: string, value: string): number {
  if (!/^([0-9]+(\.[0-9]*)?|\.[0-9]+)$/.test(value)) throw invalid(word, 'a CPU quota must be a number of CPUs', 'e.g. --cpus=0.5');
  const n = Number(value);
  if (n < 0.01 || n > 1024) throw invalid(word, 'a CPU quota must be between 0.01 and 1024 CPUs');
  return n;
}

export function parseMem(word: string, value: string): number {
  if (!/^[0-9]+$/.test(value)) {
    throw invalid(word, 'guest memory must be a whole number of MiB', 'e.g. --mem=64');
  }
  const mib = Number(value);
  if (mib < 1 || mib > MAX_MEM_MIB) {
    throw invalid(word, `guest memory must be between 1 and ${MAX_MEM_MIB} MiB`, `the default is ${DEFAULT_MEM_MIB}`);
  }
  return mib;
}

function parseFd(word: string, value: string): number {
  if (!/^[0-9]{1,7}$/.test(value)) throw invalid(word, `'@${value}' is not a file descriptor number`);
  return Number(value);
}

/** Why a MAC address cannot be a guest's, or undefined if it can. */
export function macProblem(value: string): string | undefined {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(value)) return 'MAC address must be six hex bytes separated by colons';
  const first = parseInt(value.slice(0, 2), 16);
  // A multicast source address is invalid on Ethernet: peers drop (or flood) such frames.
  if (first & 1) return `${value} is a multicast address (the low bit of the first byte is set); a guest needs a unicast address`;
  if (/^(00:){5}00$/.test(value)) return 'the all-zero MAC address is not a valid station address';
  return undefined;
}

export function parseMac(word: string, value: string): Buffer {
  const problem = macProblem(value);
  if (problem) throw invalid(word, problem, 'e.g. --net-mac:service0=02:00:00:00:00:01 (02: locally administered, unicast)');
  return Buffer.from(value.split(':').map((h) => parseInt(h, 16)));
}

export function parseSectorSize(word: string, value: string): number {
  if (!/^[0-9]{1,5}$/.test(value)) throw invalid(word, 'sector size must be a number of bytes');
  const n = Number(value);
  if (n < 512 || n > 32768 || (n & (n - 1)) !== 0) {
    throw invalid(word, 'Block size must be a power of two greater than or equal 512 (and at most 32768)');
  }
  return n;
}

/** `--KIND:NAME=VALUE` → [KIND, NAME, VALUE], or undefined if not of that shape. */
function splitDeviceOption(word: string): [string, string, string] | undefined {
  const m = /^--([a-z-]+):([^=]*)=(.*)$/s.exec(word);
  return m ? [m[1], m[2], m[3]] : undefined;
}

/** Every option of `run`, as written in the usage: flags, `--opt=VALUE`, and device options `--kind:NAME=VALUE`. */
const FLAGS = ['--x-exec-heap', '--dumpable', '--gdb', '--supervise', '--isolate', '--help', '--version'];
const VALUED: Record<string, string> = {
  '--mem': 'MB', '--log-level': 'LEVEL', '--log-format': 'FORMAT', '--wait-fifo': 'PATH', '--dumpcore': 'DIR', '--restore': 'DIR', '--record': 'FILE',
  '--uid': 'UID', '--gid': 'GID', '--cpus': 'N', '--mem-limit': 'MB', '--cgroup-parent': 'DIR',
};
/** Options that only mean something with --isolate. */
const ISOLATE_VALUED = ['--uid', '--gid', '--cpus', '--mem-limit', '--cgroup-parent'];
const DEVICE: Record<string, string> = {
  net: 'IFACE', 'net-mac': 'HWADDR', block: 'PATH', 'block-ro': 'PATH', 'block-sector-size': 'N',
};

/** Edit distance with transpositions (optimal string alignment), for suggesting the option a typo meant. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The candidate a typo most likely meant, if one is close enough to be a typo of it. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dd = distance(word, c);
    if (dd < bestD) [best, bestD] = [c, dd];
  }
  return best && bestD <= Math.max(1, Math.floor(best.length / 4)) ? best : undefined;
}

/**
 * Why an option word is not one of ours, as helpfully as possible: a valued
 * option written without `=VALUE` (`--mem 64`), or the nearest real option
 * for a typo (`--mme=64`).
 */
function unknownOption(word: string): UsageError {
  const eq = word.indexOf('=');
  const name = eq < 0 ? word : word.slice(0, eq);
  const value = eq < 0 ? undefined : word.slice(eq);
  if (eq < 0 && name in VALUED) {
    return invalid(word, `${name} needs a value`, `write it as one word: ${name}=${VALUED[name]} (e.g. ${name === '--mem' ? '--mem=64' : `${name}=…`})`);
  }
  const dev = /^--([a-z-]+):(.*)$/s.exec(name);
  if (dev && dev[1] in DEVICE && eq < 0) {
    return invalid(word, `--${dev[1]}:${dev[2] || 'NAME'} needs a value`, `write it as one word: --${dev[1]}:${dev[2] || 'NAME'}=${DEVICE[dev[1]]}`);
  }
  if (name === '--isolate') return invalid(word, '--isolate takes no value but =strict', 'write --isolate or --isolate=strict');
  if (FLAGS.includes(name) && value !== undefined) return invalid(word, `${name} takes no value`);
  const candidates = [...FLAGS, ...Object.keys(VALUED), ...Object.keys(DEVICE).map((k) => `--${k}:`)];
  const best = nearest(dev ? `--${dev[1]}:` : name, candidates);
  if (best) {
    const rest = dev ? `${dev[2]}${value ?? ''}` : (value ?? '');
    return invalid(word, 'unknown option', `did you mean ${best}${rest}?`);
  }
  return invalid(word, 'unknown option');
}

/**
 * The word for the guest operand: tendril's own verbs say GUEST; tendril-spt
 * keeps solo5-spt's KERNEL (and its messages) for drop-in compatibility.
 */
export type Dialect = 'tendril' | 'solo5-spt';

export function parseRunArgs(argv: string[], dialect: Dialect = 'tendril'): ParsedRun {
  const opts: RunOptions = { memMiB: DEFAULT_MEM_MIB, xExecHeap: false, guest: '', guestArgs: [], devices: [], dumpable: false, gdb: false, supervise: false };
  const nets = new Map<string, NetRequest>();
  const blocks = new Map<string, BlockRequest>();
  const macs = new Map<string, [string, Buffer]>();
  const sectors = new Map<string, [string, number]>();
  const seen = new Set<string>();
  let isolateSeen = false;
  const isolateWords: string[] = [];
  let memGiven = false;

  let i = 0;
  for (; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') {
      i++;
      break;
    }
    if (!word.startsWith('-') || word === '-') break;
    if (word === '--help' || word === '-h') return { kind: 'help' };
    if (word === '--version') return { kind: 'version' };
    if (word === '--x-exec-heap') {
      opts.xExecHeap = true;
      continue;
    }
    if (word === '--dumpable') {
      opts.dumpable = true;
      continue;
    }
    if (word === '--gdb') {
      opts.gdb = true;
      continue;
    }
    if (word === '--supervise') {
      opts.supervise = true;
      continue;
    }
    if (word === '--isolate' || word === '--isolate=strict') {
      opts.isolate = { ...opts.isolate, strict: word === '--isolate=strict' };
      isolateSeen = true;
      continue;
    }
    const isoName = ISOLATE_VALUED.find((n) => word.startsWith(`${n}=`));
    if (isoName) {
      const v = word.slice(isoName.length + 1);
      const iso = (opts.isolate ??= { strict: false });
      isolateWords.push(word);
      if (isoName === '--uid') iso.uid = parseId(word, v);
      else if (isoName === '--gid') iso.gid = parseId(word, v);
      else if (isoName === '--cpus') iso.cpus = parseCpus(word, v);
      else if (isoName === '--mem-limit') iso.memLimitMiB = parseMem(word, v);
      else if (v.startsWith('/')) iso.cgroupParent = v.replace(/\/+$/, '') || '/';
      else throw invalid(word, 'the cgroup parent must be an absolute path', 'e.g. --cgroup-parent=/sys/fs/cgroup/tendril');
      continue;
    }
    if (word.startsWith('--log-level=')) {
      const v = word.slice('--log-level='.length);
      if (!(LEVELS as readonly string[]).includes(v)) throw invalid(word, `log level must be one of ${LEVELS.join(', ')}`);
      opts.logLevel = v as LogLevel;
      continue;
    }
    if (word.startsWith('--log-format=')) {
      const v = word.slice('--log-format='.length);
      if (v !== 'pretty' && v !== 'json') throw invalid(word, 'log format must be pretty or json');
      opts.logFormat = v;
      continue;
    }
    if (word.startsWith('--wait-fifo=')) {
      const path = word.slice('--wait-fifo='.length);
      if (!path) throw invalid(word, 'missing path to the FIFO');
      opts.waitFifo = path;
      continue;
    }
    if (word.startsWith('--dumpcore=')) {
      const dir = word.slice('--dumpcore='.length);
      if (!dir) throw invalid(word, 'missing directory for the core file');
      opts.dumpcore = dir;
      opts.dumpable = true;
      continue;
    }
    if (word.startsWith('--record=')) {
      const file = word.slice('--record='.length);
      if (!file) throw invalid(word, 'missing file to record into');
      opts.record = file;
      continue;
    }
    if (word.startsWith('--mem=')) {
      opts.memMiB = parseMem(word, word.slice(6));
      memGiven = true;
      continue;
    }
    if (word.startsWith('--restore=')) {
      const dir = word.slice('--restore='.length);
      if (!dir) throw invalid(word, 'missing snapshot directory');
      opts.restore = dir;
      continue;
    }
    const dev = splitDeviceOption(word);
    if (!dev) throw unknownOption(word);
    const [kind, name, value] = dev;
    if (!DEVICE_NAME_RE.test(name)) {
      throw invalid(word, `device name '${name}' must be 1 to 67 letters or digits`);
    }
    const key = `${kind}:${name}`;
    if (seen.has(key)) throw invalid(word, `--${kind} given twice for device '${name}'`);
    seen.add(key);
    switch (kind) {
      case 'net': {
        if (blocks.has(name)) throw invalid(word, `'${name}' is already attached as a block device`);
        const req: NetRequest = { kind: 'net', name };
        if (value.startsWith('@')) req.fd = parseFd(word, value.slice(1));
        else if (/^[^\s/]{1,15}$/.test(value) && value !== '.' && value !== '..') req.iface = value;
        else throw invalid(word, `'${value}' is not a network interface name (1 to 15 characters, no '/' or spaces)`);
        nets.set(name, req);
        break;
      }
      case 'net-mac':
        macs.set(name, [word, parseMac(word, value)]);
        break;
      case 'block':
      case 'block-ro': {
        if (nets.has(name) || blocks.has(name)) throw invalid(word, `device '${name}' is already attached`);
        const req: BlockRequest = { kind: 'block', name, readOnly: kind === 'block-ro' };
        if (value.startsWith('@')) req.fd = parseFd(word, value.slice(1));
        else if (value.length > 0) req.path = value;
        else throw invalid(word, 'missing path to the disk image');
        blocks.set(name, req);
        break;
      }
      case 'block-sector-size':
        sectors.set(name, [word, parseSectorSize(word, value)]);
        break;
      default:
        throw unknownOption(word);
    }
  }
  if (opts.restore !== undefined) {
    // What the snapshot fixed cannot be given again.
    if (memGiven) throw invalid('--mem', 'the guest memory size is fixed by the snapshot', 'leave it out with --restore');
    if (opts.xExecHeap) throw invalid('--x-exec-heap', 'fixed by the snapshot (it was made with or without it)', 'leave it out with --restore');
    if (opts.record !== undefined) {
      // A recording replays from the image's first instruction, which a restored guest never ran.
      throw invalid('--record', 'cannot be combined with --restore (a recording starts at the guest\'s boot)', 'record a fresh run: tendril run --record=FILE GUEST');
    }
    if (i < argv.length) {
      throw new UsageError(`--restore takes no GUEST or guest arguments ('${argv[i]}'): the guest and its command line are fixed by the snapshot`,
        'tendril run --restore=DIR [device options]', true);
    }
  } else if (i >= argv.length) {
    throw dialect === 'solo5-spt' ? new UsageError('Missing KERNEL operand', 'name the unikernel to run', true)
      : new UsageError('missing GUEST operand', 'name the guest image to run, e.g. `tendril run app.spt`', true);
  } else {
    opts.guest = argv[i];
    opts.guestArgs = argv.slice(i + 1);
  }

  for (const [name, [word, mac]] of macs) {
    const net = nets.get(name);
    if (!net) throw invalid(word, `no --net:${name}=… option to apply the MAC address to`);
    net.mac = mac;
  }
  for (const [name, [word, size]] of sectors) {
    const blk = blocks.get(name);
    if (!blk) throw invalid(word, `no --block:${name}=… option to apply the sector size to`);
    blk.sectorSize = size;
  }
  if (opts.gdb && opts.supervise) throw invalid('--gdb', 'cannot be combined with --supervise (the guest can have only one tracer)');
  if (opts.waitFifo && opts.supervise) throw invalid('--wait-fifo', 'cannot be combined with --supervise');
  if (!isolateSeen && isolateWords.length) throw invalid(isolateWords[0], 'only applies with --isolate', `add --isolate (or --isolate=strict)`);
  if (opts.isolate && opts.gdb) throw invalid('--gdb', 'cannot be combined with --isolate (the isolated guest runs as another user in its own pid namespace)');
  if (opts.isolate && opts.dumpcore) throw invalid('--dumpcore', 'cannot be combined with --isolate (the isolated guest has no filesystem to write a core to)');
  if (opts.gdb && opts.record) {
    throw invalid('--gdb', 'cannot be combined with --record (the recorder is the guest\'s tracer)', 'record first, then debug the replay: tendril replay --gdb FILE');
  }
  if (opts.isolate && opts.record) throw invalid('--record', 'cannot be combined with --isolate: recording a jailed guest is not implemented');
  if (opts.isolate && opts.restore) throw invalid('--restore', 'cannot be combined with --isolate: restoring into a jail is not implemented');
  opts.devices = [...nets.values(), ...blocks.values()];
  return { kind: 'run', options: opts };
}

export function runUsage(prog: string, dialect: Dialect = 'tendril'): string {
  const G = dialect === 'solo5-spt' ? 'KERNEL' : 'GUEST';
  return `usage: ${prog} [ OPTIONS ] [ -- ] ${G} [ ARGS ]
Run the Solo5 spt unikernel ${G} (an ELF built for the spt target, ABI 2) as a
seccomp-sandboxed process. ARGS become the guest's command line.

Options:
  --mem=MB                      guest memory in MiB (default ${DEFAULT_MEM_MIB}, 1..${MAX_MEM_MIB})
  --x-exec-heap                 make the heap executable (W^X off for the heap: avoid)
  --net:NAME=IFACE              attach the existing, up tap interface IFACE as NAME
  --net:NAME=@FD                attach the already open tap file descriptor FD
  --net-mac:NAME=HWADDR         MAC address for NAME (default: random, locally administered)
  --block:NAME=PATH             attach the file or block device PATH as NAME
  --block:NAME=@FD              attach the already open disk file descriptor FD
  --block-ro:NAME=PATH          attach PATH read-only: guest writes fail, the file is never modified
  --block-sector-size:NAME=N    sector size of NAME in bytes (power of two >= 512, default 512)
  --dumpable                    leave the guest process dumpable (core dumps, ptrace by non-root)
  --dumpcore=DIR                if the guest dies by a signal, write DIR/core (open it with gdb GUEST DIR/core)
  --gdb                         stop before the guest's first instruction and wait for gdb to attach
  --record=FILE                 run for real and record the execution into FILE, to re-run it exactly
                                with \`tendril replay FILE' (anywhere: the file carries the image)
  --supervise                   run the guest as a child: log its exit and say why it died (a forbidden
                                system call by name, a fault by address); same exit status
  --isolate[=strict]            jail the guest beneath its filter: an id that owns nothing, no capabilities,
                                new namespaces, an empty root, Landlock, its own cgroup; each layer this
                                host lacks is reported; =strict refuses to run without all of them
  --uid=UID, --gid=GID          the ids an isolated guest runs as (default 2000000000, which owns nothing)
  --cpus=N                      CPU quota of an isolated guest, in CPUs (e.g. 0.5)
  --mem-limit=MB                memory limit of an isolated guest's cgroup (default: --mem plus a margin)
  --cgroup-parent=DIR           a delegated cgroup v2 directory for isolated guests' cgroups
  --wait-fifo=PATH              load the guest, then wait until a byte is written to the FIFO PATH
                                (create/start as in OCI runtimes; used by tendril-oci)
  --restore=DIR                 continue from the snapshot DIR (tendril snapshot create) instead of
                                booting ${G}: no ${G} or ARGS, no --mem or --x-exec-heap; devices again
  --log-level=LEVEL             trace, debug, info, warn (default), error, fatal or silent
  --log-format=FORMAT           pretty (default on a terminal) or json
  --help                        show this help${dialect === 'solo5-spt' ? ' (on stderr, exit 1, as solo5-spt)' : ''}
  --version                     show the tendril and ABI versions${dialect === 'solo5-spt' ? ' (on stderr, as solo5-spt)' : ''}

NAME must be a device declared in the guest's manifest, and every declared
device must be attached. Exit status: the guest's (solo5_exit(N) gives N & 0xff;
255 on abort; 139 on a memory fault; 159 when the sandbox kills a forbidden
system call); 1 when tendril itself refuses to start the guest.`;
}
