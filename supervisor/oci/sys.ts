// The libc calls tendril-oci needs beyond supervisor/os.ts, through koffi:
// FIFOs, resource limits of another process, pseudo-terminals and a unix
// socket connect (for --console-socket). Raw results; callers report errno.

import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

export const mkfifo: (path: string, mode: number) => number = libc.func('mkfifo', 'int', ['str', 'uint']);
export const prlimit: (pid: number, resource: number, newLimit: Buffer | null, oldLimit: Buffer | null) => number =
  libc.func('prlimit', 'int', ['int', 'int', 'void *', 'void *']);
export const posixOpenpt: (flags: number) => number = libc.func('posix_openpt', 'int', ['int']);
export const grantpt: (fd: number) => number = libc.func('grantpt', 'int', ['int']);
export const unlockpt: (fd: number) => number = libc.func('unlockpt', 'int', ['int']);
export const ptsnameR: (fd: number, buf: Buffer, len: number) => number = libc.func('ptsname_r', 'int', ['int', 'void *', 'size_t']);
export const socket: (domain: number, type: number, proto: number) => number = libc.func('socket', 'int', ['int', 'int', 'int']);
export const connect: (fd: number, addr: Buffer, len: number) => number = libc.func('connect', 'int', ['int', 'void *', 'uint']);

export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_CLOEXEC = 0o2000000;
export const O_RDWR = 2;
export const O_NOCTTY = 0o400;
export const O_CLOEXEC = 0o2000000;
export const TIOCSWINSZ = 0x5414;

/** RLIMIT_* numbers on Linux x86_64, by the names config.json uses. */
export const RLIMITS: Record<string, number> = {
  RLIMIT_CPU: 0, RLIMIT_FSIZE: 1, RLIMIT_DATA: 2, RLIMIT_STACK: 3, RLIMIT_CORE: 4, RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6, RLIMIT_NOFILE: 7, RLIMIT_MEMLOCK: 8, RLIMIT_AS: 9, RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11, RLIMIT_MSGQUEUE: 12, RLIMIT_NICE: 13, RLIMIT_RTPRIO: 14, RLIMIT_RTTIME: 15,
};
