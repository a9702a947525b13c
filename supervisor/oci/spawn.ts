// Starting the stub for `create` with posix_spawn(3) through koffi rather
// than child_process: loading child_process and setting up its first spawn
// is ~8 ms of CPU, a tenth of what a container's create costs, and create
// needs none of what it offers (the stub outlives us; the shim, not we,
// reaps it). The child gets exactly the fds given, at 0, 1, 2, ... in
// order, every signal at its default disposition and none blocked (Node
// ignores SIGPIPE, and an ignored signal would stay ignored in the guest),
// and optionally a new session. Its exit, until we leave, is seen with
// waitpid(WNOHANG).

import koffi from 'koffi';
import * as os from '../os.js';
import { ContainerError } from './errors.js';

const libc = koffi.load('libc.so.6');

// glibc x86_64 sizes: posix_spawn_file_actions_t 80 bytes, posix_spawnattr_t 336, sigset_t 128.
const FILE_ACTIONS_SIZE = 80;
const ATTR_SIZE = 336;
const SIGSET_SIZE = 128;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
const WNOHANG = 1;
const O_CLOEXEC = 0o2000000;
const F_DUPFD_CLOEXEC = 1030;

const faInit: (fa: Buffer) => number = libc.func('posix_spawn_file_actions_init', 'int', ['void *']);
const faDup2: (fa: Buffer, fd: number, to: number) => number = libc.func('posix_spawn_file_actions_adddup2', 'int', ['void *', 'int', 'int']);
const faDestroy: (fa: Buffer) => number = libc.func('posix_spawn_file_actions_destroy', 'int', ['void *']);
const attrInit: (a: Buffer) => number = libc.func('posix_spawnattr_init', 'int', ['void *']);
const attrSetFlags: (a: Buffer, flags: number) => number = libc.func('posix_spawnattr_setflags', 'int', ['void *', 'short']);
const attrSetSigDefault: (a: Buffer, set: Buffer) => number = libc.func('posix_spawnattr_setsigdefault', 'int', ['void *', 'void *']);
const attrSetSigMask: (a: Buffer, set: Buffer) => number = libc.func('posix_spawnattr_setsigmask', 'int', ['void *', 'void *']);
const attrDestroy: (a: Buffer) => number = libc.func('posix_spawnattr_destroy', 'int', ['void *']);
const sigFillSet: (set: Buffer) => number = libc.func('sigfillset', 'int', ['void *']);
const sigEmptySet: (set: Buffer) => number = libc.func('sigemptyset', 'int', ['void *']);
/** posix_spawnp: a name without '/' (setsid) is looked up in this process's PATH. */
const posixSpawnp: (pid: Buffer, file: string, fa: Buffer, attr: Buffer, argv: (string | null)[], envp: (string | null)[]) => number =
  libc.func('posix_spawnp', 'int', ['void *', 'str', 'void *', 'void *', koffi.pointer('str'), koffi.pointer('str')]);
const waitpidRaw: (pid: number, status: Buffer, options: number) => number = libc.func('waitpid', 'int', ['int', 'void *', 'int']);
const pipe2Raw: (fds: Buffer, flags: number) => number = libc.func('pipe2', 'int', ['void *', 'int']);
const pollRaw: (fds: Buffer, n: number, timeoutMs: number) => number = libc.func('poll', 'int', ['void *', 'ulong', 'int']);
const POLLIN = 0x1;
const EINTR = 4;

export interface SpawnOptions {
  /** argv[0] as the child sees it. */
  argv0: string;
  /** The child's fds 0, 1, 2, ...: this process's fd for each. */
  fds: number[];
  /** Start it in a new session (setsid). */
  newSession: boolean;
}

/** Starts `file` with an empty environment; returns its pid. */
export function spawnWithFds(file: string, args: string[], o: SpawnOptions): number {
  const parked: number[] = [];
  const fa = Buffer.alloc(FILE_ACTIONS_SIZE);
  const attr = Buffer.alloc(ATTR_SIZE);
  faInit(fa);
  attrInit(attr);
  try {
    // Copies parked above the child's range first, so that no dup2 into place overwrites a source not yet moved.
    for (const fd of o.fds) {
      const p = os.fcntl(fd, F_DUPFD_CLOEXEC, o.fds.length);
      if (p < 0) throw new ContainerError(`cannot start the stub: fcntl(${fd}): ${os.strerror(os.errno())}`);
      parked.push(p);
    }
    // dup2 clears close-on-exec on the copy; the parked originals close at exec.
    parked.forEach((p, i) => faDup2(fa, p, i));
    const all = Buffer.alloc(SIGSET_SIZE);
    const none = Buffer.alloc(SIGSET_SIZE);
    sigFillSet(all);
    sigEmptySet(none);
    attrSetSigDefault(attr, all);
    attrSetSigMask(attr, none);
    attrSetFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (o.newSession ? POSIX_SPAWN_SETSID : 0));
    const pid = Buffer.alloc(4);
    const err = posixSpawnp(pid, file, fa, attr, [o.argv0, ...args, null], [null]);
    if (err !== 0) throw new ContainerError(`cannot start ${file}: ${os.strerror(err)}`);
    return pid.readInt32LE(0);
  } finally {
    for (const p of parked) os.close(p);
    faDestroy(fa);
    attrDestroy(attr);
  }
}

/** The child's end if it has ended ({code} or {signal}), else undefined. Reaps it. */
export function exited(pid: number): { code?: number; signal?: number } | undefined {
  const status = Buffer.alloc(4);
  if (waitpidRaw(pid, status, WNOHANG) !== pid) return undefined;
  const s = status.readInt32LE(0);
  return (s & 0x7f) === 0 ? { code: (s >> 8) & 0xff } : { signal: s & 0x7f };
}

/** A pipe, both ends close-on-exec: [read, write]. */
export function pipe(): [number, number] {
  const fds = Buffer.alloc(8);
  if (pipe2Raw(fds, O_CLOEXEC) < 0) throw new ContainerError(`pipe2 failed: ${os.strerror(os.errno())}`);
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

/**
 * Blocks until fd is readable or hung up (for a pipe: data, or its last
 * writer gone), or timeoutMs passes; false on the timeout. create has
 * nothing else to do meanwhile, so blocking is right, and it needs no
 * thread pool for it.
 */
export function waitReadable(fd: number, timeoutMs: number): boolean {
  const end = Date.now() + timeoutMs;
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(POLLIN, 4);
  for (;;) {
    const r = pollRaw(pfd, 1, Math.max(0, end - Date.now()));
    if (r > 0) return true;
    if (r === 0) return false;
    if (os.errno() !== EINTR) throw new ContainerError(`poll failed: ${os.strerror(os.errno())}`);
  }
}

/** Sleeps this thread for ms (fractions allowed), without the event loop. */
export function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
