// process.terminal: the guest's stdio is the slave side of a new
// pseudo-terminal, and the master goes to whoever listens on
// --console-socket (containerd's shim), as runc does it: one sendmsg with
// the pty's name as data and the master fd attached (SCM_RIGHTS).

import { closeSync, openSync } from 'node:fs';
import * as os from '../os.js';
import { ContainerError } from './errors.js';
import * as sys from './sys.js';

export interface Pty {
  master: number;
  slave: number;
  name: string;
}

function fail(what: string): ContainerError {
  return new ContainerError(`terminal: ${what} failed: ${os.strerror(os.errno())}`);
}

export function openPty(size?: { height: number; width: number }): Pty {
  const master = sys.posixOpenpt(sys.O_RDWR | sys.O_NOCTTY | sys.O_CLOEXEC);
  if (master < 0) throw fail('posix_openpt');
  try {
    if (sys.grantpt(master) < 0) throw fail('grantpt');
    if (sys.unlockpt(master) < 0) throw fail('unlockpt');
    const buf = Buffer.alloc(128);
    const err = sys.ptsnameR(master, buf, buf.length);
    if (err !== 0) throw new ContainerError(`terminal: ptsname failed: ${os.strerror(err)}`);
    const name = buf.toString('latin1', 0, buf.indexOf(0));
    if (size && size.height > 0 && size.width > 0) {
      const ws = Buffer.alloc(8);
      ws.writeUInt16LE(size.height, 0);
      ws.writeUInt16LE(size.width, 2);
      if (os.ioctlPtr(master, sys.TIOCSWINSZ, ws) < 0) throw fail('TIOCSWINSZ');
    }
    const slave = openSync(name, sys.O_RDWR | sys.O_NOCTTY);
    return { master, slave, name };
  } catch (e) {
    os.close(master);
    throw e;
  }
}

export function closePty(p: Pty): void {
  os.close(p.master);
  try {
    closeSync(p.slave);
  } catch {
    // already closed
  }
}

/** Connects to the unix socket PATH and sends the pty master with its name. */
export function sendConsole(path: string, pty: Pty): void {
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(sys.AF_UNIX, 0);
  if (Buffer.byteLength(path) > 107) throw new ContainerError(`--console-socket ${path}: path too long for a unix socket`);
  addr.write(path, 2, 'utf8');
  const sock = sys.socket(sys.AF_UNIX, sys.SOCK_STREAM | sys.SOCK_CLOEXEC, 0);
  if (sock < 0) throw fail('socket');
  try {
    if (sys.connect(sock, addr, 2 + Buffer.byteLength(path) + 1) < 0) {
      throw new ContainerError(`--console-socket ${path}: connect failed: ${os.strerror(os.errno())}`);
    }
    const n = os.sendWithFds(sock, Buffer.from(pty.name), [pty.master]);
    if (n < 0) throw new ContainerError(`--console-socket ${path}: sending the terminal failed: ${os.strerror(-n)}`);
  } finally {
    os.close(sock);
  }
}
