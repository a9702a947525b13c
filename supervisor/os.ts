// The few libc calls Node does not offer, through koffi. Each wrapper returns
// the raw result and leaves errno reporting to the caller, which knows what
// the call was for; koffi's errno() reads the thread's errno right after.

import { fstatSync, readlinkSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

export const F_SETFD = 2;
export const F_GETFL = 3;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLLIN = 1;
export const CLOCK_MONOTONIC = 1;
export const TFD_NONBLOCK = 0o4000;
export const TFD_CLOEXEC = 0o2000000;
export const MFD_CLOEXEC = 1;
export const MFD_ALLOW_SEALING = 2;
export const F_ADD_SEALS = 1033;
export const F_SEAL_SEAL = 1;
export const F_SEAL_SHRINK = 2;
export const F_SEAL_GROW = 4;
export const F_SEAL_WRITE = 8;

export const fcntl: (fd: number, cmd: number, arg: number) => number = libc.func('fcntl', 'int', ['int', 'int', 'int']);
export const close: (fd: number) => number = libc.func('close', 'int', ['int']);
export const F_DUPFD_CLOEXEC = 1030;

/** A close-on-exec copy of fd (throws if the process is out of fds). */
export function dupCloexec(fd: number): number {
  const n = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (n < 0) throw new Error(`fcntl(F_DUPFD_CLOEXEC) of fd ${fd}: ${strerror(errno())}`);
  return n;
}
export const execve: (path: string, argv: (string | null)[], envp: (string | null)[]) => number =
  libc.func('execve', 'int', ['str', koffi.pointer('str'), koffi.pointer('str')]);
export const epollCreate1: (flags: number) => number = libc.func('epoll_create1', 'int', ['int']);
export const epollCtl: (epfd: number, op: number, fd: number, event: Buffer) => number =
  libc.func('epoll_ctl', 'int', ['int', 'int', 'int', 'void *']);
export const timerfdCreate: (clock: number, flags: number) => number = libc.func('timerfd_create', 'int', ['int', 'int']);
export const memfdCreate: (name: string, flags: number) => number = libc.func('memfd_create', 'int', ['str', 'uint']);
export const ioctlPtr: (fd: number, req: number, arg: Buffer) => number =
  libc.func('ioctl', 'int', ['int', 'ulong', 'void *']);
export const strerrorRaw: (errnum: number) => string = libc.func('strerror', 'str', ['int']);

export function errno(): number {
  return koffi.errno();
}

export function strerror(err: number): string {
  return strerrorRaw(err);
}

/** struct epoll_event is packed on x86_64: u32 events, u64 data (12 bytes). */
export function epollEvent(events: number, data: bigint): Buffer {
  const ev = Buffer.alloc(12);
  ev.writeUInt32LE(events, 0);
  ev.writeBigUInt64LE(data, 4);
  return ev;
}

export const AF_INET = 2;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
export const SEEK_END = 2;
export const O_NONBLOCK = 0o4000;
export const F_SETFL = 4;

export const socket: (domain: number, type: number, proto: number) => number = libc.func('socket', 'int', ['int', 'int', 'int']);
export const lseek: (fd: number, off: number, whence: number) => bigint | number = libc.func('lseek', 'int64', ['int', 'int64', 'int']);

/** The address of a Buffer's memory, for structs that hold pointers (ifr_data). */
export function addressOf(buf: Buffer): bigint {
  return koffi.address(buf);
}

export const RLIMIT_CORE = 4;
export const setrlimit: (resource: number, rlim: Buffer) => number = libc.func('setrlimit', 'int', ['int', 'void *']);

const signalFn: (sig: number, handler: null) => unknown = libc.func('signal', 'void *', ['int', 'void *']);
export const raise: (sig: number) => number = libc.func('raise', 'int', ['int']);

/** Back to the default action (Node and V8 install handlers for some signals). */
export function resetSignal(sig: number): void {
  signalFn(sig, null); // SIG_DFL is the null handler
}

export function signalNumber(name: string): number {
  return (constants.signals as Record<string, number>)[name] ?? 0;
}

export const MSG_NOSIGNAL = 0x4000;
export const MSG_DONTWAIT = 0x40;
const sendmsgFn: (fd: number, msg: Buffer, flags: number) => number = libc.func('sendmsg', 'long', ['int', 'void *', 'int']);

/**
 * sendmsg(2) of `data` with `fds` attached (SCM_RIGHTS). Returns the bytes
 * sent, or -errno. The buffers must stay alive for the call only: the
 * kernel copies them.
 */
export function sendWithFds(sock: number, data: Buffer, fds: number[]): number {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(koffi.address(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const space = fds.length ? 16 + ((4 * fds.length + 7) & ~7) : 0;
  const control = Buffer.alloc(Math.max(space, 8));
  if (fds.length) {
    control.writeBigUInt64LE(BigInt(16 + 4 * fds.length), 0); // cmsg_len
    control.writeInt32LE(1, 8); // SOL_SOCKET
    control.writeInt32LE(1, 12); // SCM_RIGHTS
    fds.forEach((fd, i) => control.writeInt32LE(fd, 16 + 4 * i));
  }
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(koffi.address(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  if (fds.length) {
    msg.writeBigUInt64LE(koffi.address(control), 32);
    msg.writeBigUInt64LE(BigInt(space), 40);
  }
  const n = sendmsgFn(sock, msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  return n < 0 ? -errno() : n;
}

export const CLONE_NEWNET = 0x40000000;
export const setns: (fd: number, nstype: number) => number = libc.func('setns', 'int', ['int', 'int']);
export const ioctlInt: (fd: number, req: number) => number = libc.func('ioctl', 'int', ['int', 'ulong']);

/** Whether fd refers to the same file as path (same device and inode). */
export function sameFile(fd: number, path: string): boolean {
  try {
    const a = fstatSync(fd);
    const b = statSync(path);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/** What an fd number refers to ("anon_inode:[eventpoll]", a path…), for messages; undefined if not open. */
export function describeFd(fd: number): string | undefined {
  try {
    return `it is ${readlinkSync(`/proc/self/fd/${fd}`)}`;
  } catch {
    return undefined;
  }
}

const syscallFn = libc.func('long syscall(long nr, ...)') as (...args: unknown[]) => number | bigint;

/**
 * The kernel's Landlock ABI version (landlock_create_ruleset with
 * LANDLOCK_CREATE_RULESET_VERSION), or -errno: -ENOSYS without Landlock in
 * the kernel, -EOPNOTSUPP when it is built but not enabled (lsm=).
 */
export function landlockAbi(): number {
  const r = Number(syscallFn(444, 'void *', null, 'size_t', 0, 'uint32_t', 1));
  return r < 0 ? -errno() : r;
}
