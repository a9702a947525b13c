// BLOCK_BASIC: a disk image file or block device (abi.md §11). `--block-ro`
// opens it O_RDONLY, so a guest write reaches the kernel and fails with EBADF
// (the guest sees SOLO5_R_EUNSPEC): the file cannot be modified whatever the
// guest does, and the guest is not killed for trying.

import { closeSync, constants as fsc, fstatSync, openSync, type Stats } from 'node:fs';
import type { ManifestDevice } from '../../loader/manifest.js';
import { blockPolicy } from '../../filters/policy.js';
import { DeviceError } from '../errors.js';
import { deviceLabel, type BlockRequest } from '../options.js';
import * as os from '../os.js';
import type { AttachedDevice } from './index.js';

const DEFAULT_SECTOR_SIZE = 512;
const O_ACCMODE = 3;
const O_RDONLY = 0;

function openError(where: string, path: string, e: NodeJS.ErrnoException, req: BlockRequest): DeviceError {
  const why: Record<string, string> = {
    ENOENT: 'No such file or directory',
    EACCES: 'Permission denied',
    EISDIR: 'Is a directory',
    EROFS: 'Read-only file system',
    ETXTBSY: 'Text file busy',
  };
  const hint = e.code !== 'EACCES' && e.code !== 'EROFS' ? undefined
    : req.label ? `set ${req.label}.readOnly to true to attach it read-only` : `use --block-ro:${req.name}=${path} to attach it read-only`;
  return new DeviceError(`${where}: Could not open block device: ${path}: ${why[e.code ?? ''] ?? e.message}`, hint);
}

function checkKind(where: string, what: string, st: Stats, fd: number): void {
  if (st.isDirectory()) throw new DeviceError(`${where}: ${what} is a directory, not a disk image`);
  if (!st.isFile() && !st.isBlockDevice()) {
    const target = os.describeFd(fd);
    throw new DeviceError(`${where}: ${what} is not a regular file or block device${target ? ` (${target})` : ''}`);
  }
}

/** Opens (or adopts) the backing fd; returns it and whether tendril owns it. */
function openBacking(req: BlockRequest, where: string): { fd: number; owned: boolean } {
  if (req.fd !== undefined) {
    const fd = req.fd;
    if (fd <= 2) throw new DeviceError(`${where}: fd ${fd} is standard input/output, not a disk`);
    let st: Stats;
    try {
      st = fstatSync(fd);
    } catch {
      throw new DeviceError(`${where}: fd ${fd} is not open`, `pass it to tendril, e.g. \`tendril run --block:${req.name}=@3 GUEST 3<>disk.img\``);
    }
    checkKind(where, `fd ${fd}`, st, fd);
    const mode = os.fcntl(fd, os.F_GETFL, 0) & O_ACCMODE;
    if (req.readOnly && mode !== O_RDONLY) {
      // The guest must not get a writable description: reopen the same file read-only.
      try {
        return { fd: openSync(`/proc/self/fd/${fd}`, 'r'), owned: true };
      } catch (e) {
        throw openError(where, `fd ${fd}`, e as NodeJS.ErrnoException, req);
      }
    }
    if (!req.readOnly && mode === O_RDONLY) {
      throw new DeviceError(`${where}: fd ${fd} is open read-only`, `open it read-write (3<>FILE) or use --block-ro:${req.name}=@${fd}`);
    }
    return { fd, owned: false };
  }
  const path = req.path!;
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO read-only would otherwise wait for a writer
    // before we could see it is not a disk. O_NOCTTY: a terminal named by
    // mistake must not become ours.
    fd = openSync(path, (req.readOnly ? fsc.O_RDONLY : fsc.O_RDWR) | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  } catch (e) {
    throw openError(where, path, e as NodeJS.ErrnoException, req);
  }
  try {
    checkKind(where, path, fstatSync(fd), fd);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  const fl = os.fcntl(fd, os.F_GETFL, 0);
  if (fl >= 0) os.fcntl(fd, os.F_SETFL, fl & ~os.O_NONBLOCK);
  return { fd, owned: true };
}

function capacityOf(fd: number, where: string): bigint {
  // lseek(SEEK_END) works for files and block devices alike (st_size is 0 for the latter).
  const end = os.lseek(fd, 0, os.SEEK_END);
  if (BigInt(end) < 0n) throw new DeviceError(`${where}: cannot determine the size: ${os.strerror(os.errno())}`);
  return BigInt(end);
}

export function attachBlock(req: BlockRequest, dev: ManifestDevice): AttachedDevice {
  const where = deviceLabel(req);
  const { fd, owned } = openBacking(req, where);
  try {
    const blockSize = req.sectorSize ?? DEFAULT_SECTOR_SIZE;
    const capacity = capacityOf(fd, where);
    if (capacity % BigInt(blockSize) !== 0n) {
      throw new DeviceError(`${where}: ${req.name}: Backing storage size must be block aligned (${blockSize} bytes); it is ${capacity} bytes`,
        `resize the image to a multiple of ${blockSize}, e.g. truncate -s %${blockSize} IMAGE`);
    }
    if (capacity < BigInt(blockSize)) {
      throw new DeviceError(`${where}: ${req.name}: Backing storage must be at least 1 block (${blockSize} bytes) in size; it is ${capacity} bytes`);
    }
    return {
      name: req.name,
      kind: 'block',
      hostfd: fd,
      attachment: { index: dev.index, block: { capacity, blockSize } },
      rules: (guestFd) => blockPolicy(req.name, guestFd, blockSize, capacity, req.readOnly),
      pollable: false,
      summary: `block ${req.name} (handle ${dev.index}): ${req.path ?? `fd ${req.fd}`}, host fd ${fd}, ` +
        `${capacity} bytes, ${blockSize}-byte sectors${req.readOnly ? ', read-only' : ''}`,
    };
  } catch (e) {
    if (owned) closeSync(fd);
    throw e;
  }
}
