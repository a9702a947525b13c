// The `run` command line, in solo5-spt's syntax (abi.md §14) but strict: every
// value is checked in full (no sscanf-style trailing junk, abi.md §17 D6) and out of
// range values are errors, not crashes (abi.md §17 D5). Options come before GUEST;
// every word after GUEST belongs to the guest.

import { DEFAULT_MEM_MIB, MAX_MEM_MIB } from '../loader/abi.js';
import { DEVICE_NAME_RE } from '../loader/manifest.js';
import { UsageError } from './errors.js';
import { LEVELS, type LogFormat, type LogLevel } from './log.js';

export interface NetRequest {
  kind: 'net';
  name: string;
  /** Interface name, or a pre-opened tap fd (`@FD`). */
  iface?: string;
  fd?: number;
  mac?: Buffer;
}

export interface BlockRequest {
  kind: 'block';
  name: string;
  path?: string;
  fd?: number;
  readOnly: boolean;
  sectorSize?: number;
}

export type DeviceRequest = NetRequest | BlockRequest;

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
}

export type ParsedRun = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; options: RunOptions };

function invalid(word: string, why: string, hint?: string): UsageError {
  return new UsageError(`Invalid option: \`${word}': ${why}`, hint, true);
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

export function parseMac(word: string, value: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(value)) {
    throw invalid(word, 'MAC address must be six hex bytes separated by colons', 'e.g. --net-mac:service0=02:00:00:00:00:01');
  }
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

export function parseRunArgs(argv: string[]): ParsedRun {
  const opts: RunOptions = { memMiB: DEFAULT_MEM_MIB, xExecHeap: false, guest: '', guestArgs: [], devices: [], dumpable: false, gdb: false, supervise: false };
  const nets = new Map<string, NetRequest>();
  const blocks = new Map<string, BlockRequest>();
  const macs = new Map<string, [string, Buffer]>();
  const sectors = new Map<string, [string, number]>();
  const seen = new Set<string>();

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
    if (word.startsWith('--mem=')) {
      opts.memMiB = parseMem(word, word.slice(6));
      continue;
    }
    const dev = splitDeviceOption(word);
    if (!dev) throw invalid(word, 'unknown option');
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
        throw invalid(word, 'unknown option');
    }
  }
  if (i >= argv.length) throw new UsageError('Missing KERNEL operand', 'name the guest image to run', true);
  opts.guest = argv[i];
  opts.guestArgs = argv.slice(i + 1);

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
  opts.devices = [...nets.values(), ...blocks.values()];
  return { kind: 'run', options: opts };
}

export function runUsage(prog: string): string {
  return `usage: ${prog} [ OPTIONS ] [ -- ] GUEST [ ARGS ]
Run the Solo5 spt unikernel GUEST (an ELF built for the spt target, ABI 2) as a
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
  --supervise                   run the guest as a child: log its exit and say why it died (a forbidden
                                system call by name, a fault by address); same exit status
  --wait-fifo=PATH              load the guest, then wait until a byte is written to the FIFO PATH
                                (create/start as in OCI runtimes; used by tendril-oci)
  --log-level=LEVEL             trace, debug, info, warn (default), error, fatal or silent
  --log-format=FORMAT           pretty (default on a terminal) or json
  --help                        show this help (exit 1, like solo5-spt)
  --version                     show the tendril and ABI versions

NAME must be a device declared in the guest's manifest, and every declared
device must be attached. Exit status: the guest's (solo5_exit(N) gives N & 0xff;
255 on abort; 139 on a memory fault; 159 when the sandbox kills a forbidden
system call); 1 when tendril itself refuses to start the guest.`;
}
