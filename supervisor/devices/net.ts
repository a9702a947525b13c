// NET_BASIC: a tap interface (abi.md §10). Either tendril opens /dev/net/tun and
// attaches to an existing, up interface, or the caller hands over a tap fd it
// opened itself (`@FD`, which the reference rejects: abi.md §17 D1).

import { closeSync, openSync, constants as fsc } from 'node:fs';
import type { ManifestDevice } from '../../loader/manifest.js';
import { netPolicy } from '../../filters/policy.js';
import { DeviceError } from '../errors.js';
import { deviceLabel, type NetRequest } from '../options.js';
import * as os from '../os.js';
import type { AttachedDevice } from './index.js';

const IFNAMSIZ = 16;
const IFREQ_SIZE = 40;
const IFF_UP = 0x1;
const IFF_RUNNING = 0x40;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const SIOCGIFFLAGS = 0x8913;
const SIOCGIFMTU = 0x8921;
const SIOCETHTOOL = 0x8946;
const TUNSETIFF = 0x400454ca;
const TUNGETIFF = 0x800454d2;
const TUNATTACHFILTER = 0x401054d5;
const TUNDETACHFILTER = 0x401054d6;
const TUNGETFILTER = 0x801054db;
const TUNGETDEVNETNS = 0x54e3;
const ETHTOOL_SGSO = 0x24;
const ETHTOOL_SGRO = 0x2c;

function ifreq(name: string): Buffer {
  const r = Buffer.alloc(IFREQ_SIZE);
  r.write(name, 0, IFNAMSIZ - 1, 'latin1');
  return r;
}

function ifName(r: Buffer): string {
  const nul = r.indexOf(0);
  return r.toString('latin1', 0, nul < 0 || nul > IFNAMSIZ ? IFNAMSIZ : nul);
}

/**
 * Runs `fn` with a throwaway AF_INET socket, the handle interface ioctls
 * need. Interface names are per network namespace: with `netns` (a tap
 * passed by fd from another namespace) the socket is made in that namespace,
 * by switching this thread there just for the socket() call.
 */
function withSocket<T>(fn: (sock: number) => T, netns?: number): T {
  let sock: number;
  if (netns === undefined) {
    sock = os.socket(os.AF_INET, os.SOCK_DGRAM | os.SOCK_CLOEXEC, 0);
  } else {
    const home = openSync('/proc/thread-self/ns/net', 'r');
    try {
      if (os.setns(netns, os.CLONE_NEWNET) < 0) {
        throw new DeviceError(`cannot enter the tap's network namespace: ${os.strerror(os.errno())}`, 'tendril needs CAP_SYS_ADMIN for a tap from another namespace');
      }
      sock = os.socket(os.AF_INET, os.SOCK_DGRAM | os.SOCK_CLOEXEC, 0);
      if (os.setns(home, os.CLONE_NEWNET) < 0) {
        // Staying in the wrong namespace would be worse than stopping.
        process.stderr.write(`tendril: cannot return to its own network namespace: ${os.strerror(os.errno())}\n`);
        process.exit(1);
      }
    } finally {
      closeSync(home);
    }
  }
  if (sock < 0) throw new DeviceError(`socket(AF_INET) failed: ${os.strerror(os.errno())}`);
  try {
    return fn(sock);
  } finally {
    os.close(sock);
  }
}

function interfaceMtu(sock: number, iface: string, where: string): number {
  const r = ifreq(iface);
  if (os.ioctlPtr(sock, SIOCGIFMTU, r) < 0) {
    throw new DeviceError(`${where}: cannot read the MTU of ${iface}: ${os.strerror(os.errno())}`);
  }
  return r.readInt32LE(16);
}

/** GRO/GSO would hand the guest frames larger than the MTU; errors are ignored like the reference. */
function disableOffloads(sock: number, iface: string): void {
  for (const cmd of [ETHTOOL_SGRO, ETHTOOL_SGSO]) {
    const value = Buffer.alloc(8);
    value.writeUInt32LE(cmd, 0);
    const r = ifreq(iface);
    r.writeBigUInt64LE(os.addressOf(value), 16);
    os.ioctlPtr(sock, SIOCETHTOOL, r);
  }
}

function openTap(iface: string, where: string): number {
  return withSocket((sock) => {
    const flags = ifreq(iface);
    if (os.ioctlPtr(sock, SIOCGIFFLAGS, flags) < 0) {
      const err = os.errno();
      throw new DeviceError(`${where}: Could not attach interface: ${iface}: ${err === 19 ? 'no such interface' : os.strerror(err)}`,
        `create it first, e.g. \`ip tuntap add ${iface} mode tap && ip link set ${iface} up\``);
    }
    if (!(flags.readUInt16LE(16) & (IFF_UP | IFF_RUNNING))) {
      throw new DeviceError(`${where}: Could not attach interface: ${iface}: interface is down`,
        `bring it up: \`ip link set ${iface} up\``);
    }
    let fd: number;
    try {
      fd = openSync('/dev/net/tun', fsc.O_RDWR | fsc.O_NONBLOCK);
    } catch (e) {
      throw new DeviceError(`${where}: cannot open /dev/net/tun: ${(e as Error).message}`,
        'tendril needs the tun module and permission to use it (root or CAP_NET_ADMIN)');
    }
    const r = ifreq(iface);
    r.writeUInt16LE(IFF_TAP | IFF_NO_PI, 16);
    if (os.ioctlPtr(fd, TUNSETIFF, r) < 0) {
      const err = os.errno();
      closeSync(fd);
      const hint = err === 16 ? 'another process (another guest?) already has this tap open'
        : err === 22 ? `${iface} is not a tap interface` : undefined;
      throw new DeviceError(`${where}: Could not attach interface: ${iface}: TUNSETIFF: ${os.strerror(err)}`, hint);
    }
    if (ifName(r) !== iface) {
      closeSync(fd);
      throw new DeviceError(`${where}: Could not attach interface: ${iface}: kernel attached ${ifName(r)} instead`);
    }
    disableOffloads(sock, iface);
    return fd;
  });
}

/**
 * The tap's TUNSETIFF flags. TUNGETIFF alone cannot tell IFF_NO_PI: the
 * kernel reports IFF_NOFILTER, the same bit, whenever no socket filter is
 * attached. So, unless a filter is there already, an accept-all filter is
 * attached for the query and removed again.
 */
function tapFlags(fd: number, where: string): { name: string; flags: number } {
  const query = () => {
    const r = Buffer.alloc(IFREQ_SIZE);
    if (os.ioctlPtr(fd, TUNGETIFF, r) < 0) return undefined;
    return { name: ifName(r), flags: r.readUInt16LE(16) };
  };
  const first = query();
  if (!first) {
    const err = os.errno();
    throw new DeviceError(`${where}: fd ${fd} is not an attached tap device (${os.describeFd(fd) ?? (err === 9 ? 'it is not open' : `TUNGETIFF: ${os.strerror(err)}`)})`,
      'pass the tap fd to tendril open, after TUNSETIFF, e.g. `tendril run --net:NAME=@3 GUEST 3<>/dev/net/tun`');
  }
  const current = Buffer.alloc(16);
  if (os.ioctlPtr(fd, TUNGETFILTER, current) >= 0 && current.readUInt16LE(0) > 0) return first;
  const acceptAll = Buffer.alloc(8);
  acceptAll.writeUInt16LE(0x06, 0); // BPF_RET|BPF_K
  acceptAll.writeUInt32LE(0xffffffff, 4);
  const prog = Buffer.alloc(16);
  prog.writeUInt16LE(1, 0);
  prog.writeBigUInt64LE(os.addressOf(acceptAll), 8);
  if (os.ioctlPtr(fd, TUNATTACHFILTER, prog) < 0) {
    throw new DeviceError(`${where}: cannot query the tap's framing (TUNATTACHFILTER: ${os.strerror(os.errno())})`);
  }
  try {
    return query() ?? first;
  } finally {
    os.ioctlPtr(fd, TUNDETACHFILTER, prog);
  }
}

/** A pre-opened fd must be a tap in the framing the guest expects: no packet-info or vnet header. */
function inspectTapFd(fd: number, where: string): { iface: string; netns?: number } {
  if (fd <= 2) throw new DeviceError(`${where}: fd ${fd} is standard input/output, not a tap`);
  const { name, flags } = tapFlags(fd, where);
  if (!(flags & IFF_TAP)) throw new DeviceError(`${where}: fd ${fd} is a tun (layer 3) device; the guest needs a tap (layer 2)`);
  if (!(flags & IFF_NO_PI) || (flags & IFF_VNET_HDR)) {
    throw new DeviceError(`${where}: fd ${fd} was opened with a packet-info or vnet header`,
      'open the tap with IFF_TAP|IFF_NO_PI and no IFF_VNET_HDR');
  }
  const fl = os.fcntl(fd, os.F_GETFL, 0);
  if (fl >= 0 && !(fl & os.O_NONBLOCK)) os.fcntl(fd, os.F_SETFL, fl | os.O_NONBLOCK);
  // The tap may live in another network namespace than ours (passed in by a
  // caller that made it there): its name means something only there.
  const ns = os.ioctlInt(fd, TUNGETDEVNETNS);
  if (ns < 0) return { iface: name };
  if (os.sameFile(ns, '/proc/thread-self/ns/net')) {
    os.close(ns);
    return { iface: name };
  }
  return { iface: name, netns: ns };
}

function randomMac(): Buffer {
  // Web Crypto is always there; node:crypto would cost the cold path a module load.
  const mac = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(6)));
  mac[0] = (mac[0] & 0xfe) | 0x02; // unicast, locally administered
  return mac;
}

export function formatMac(mac: Buffer): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export function attachNet(req: NetRequest, dev: ManifestDevice): AttachedDevice {
  const where = deviceLabel(req);
  let fd: number;
  let iface: string;
  let mtu: number;
  if (req.fd !== undefined) {
    fd = req.fd;
    const tap = inspectTapFd(fd, where);
    iface = tap.iface;
    try {
      mtu = withSocket((sock) => {
        disableOffloads(sock, iface);
        return interfaceMtu(sock, iface, where);
      }, tap.netns);
    } finally {
      if (tap.netns !== undefined) os.close(tap.netns);
    }
  } else {
    iface = req.iface!;
    fd = openTap(iface, where);
    try {
      mtu = withSocket((sock) => interfaceMtu(sock, iface, where));
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }
  const mac = req.mac ?? randomMac();
  return {
    name: req.name,
    kind: 'net',
    hostfd: fd,
    attachment: { index: dev.index, net: { mac, mtu } },
    rules: (guestFd) => netPolicy(req.name, guestFd),
    pollable: true,
    summary: `net ${req.name} (handle ${dev.index}): ${iface}, host fd ${fd}, mtu ${mtu}, mac ${formatMac(mac)}`,
  };
}
