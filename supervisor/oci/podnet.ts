// A guest that owns its pod's network interface (org.tendril.pod-net.NAME=
// IFACE, usually eth0, the veth CNI made): create, already inside the pod's
// network namespace, makes a tap there and joins it to IFACE both ways with
// tc mirred (everything arriving on IFACE leaves through the tap to the
// guest, everything the guest sends leaves through IFACE), and gives the
// guest IFACE's MAC address, so to the rest of the network the guest simply
// is the pod: the bridge's ARP entry and learned port stay right. The IPv4
// address and default route move off IFACE (recorded in the state), so the
// pod namespace's own stack does not answer for the pod IP as well; the
// guest gets them on its command line instead (podargs.ts). A bridge was
// the other way: it would need the MAC on a port of its own and could not
// let the guest keep IFACE's. The tap is not persistent: it lives exactly
// as long as the guest holds it. `delete` (native/oci/podnet.c) puts the
// address, route and qdiscs back once the guest is gone.

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync, constants as fsc } from 'node:fs';
import * as os from '../os.js';
import type { PodNetSpec } from './bundle.js';
import { ContainerError } from './errors.js';
import type { PodValues } from './podargs.js';

const IFREQ_SIZE = 40;
const IFF_UP = 0x1;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const SIOCGIFADDR = 0x8915;
const SIOCGIFNETMASK = 0x891b;
const SIOCGIFMTU = 0x8921;
const SIOCSIFMTU = 0x8922;
const SIOCGIFHWADDR = 0x8927;
const TUNSETIFF = 0x400454ca;
const EADDRNOTAVAIL = 99;

export interface PodNet {
  iface: string;
  mac: string;
  mtu: number;
  /** IPv4 address and prefix length that were on the interface, if any. */
  addr?: string;
  prefix?: number;
  gateway?: string;
  tap: string;
  tapFd: number;
}

function ifreq(name: string): Buffer {
  const r = Buffer.alloc(IFREQ_SIZE);
  r.write(name, 0, 15, 'latin1');
  return r;
}

function fail(what: string, iface: string): never {
  const err = os.errno();
  throw new ContainerError(`the pod's interface ${iface}: ${what}: ${err === 19 ? 'no such interface in the pod\'s network namespace' : os.strerror(err)}`);
}

const ipv4 = (b: Buffer, off: number) => `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;

/** The default IPv4 route through iface, from the routing table of this thread's namespace. */
function defaultGateway(iface: string): string | undefined {
  for (const line of readFileSync('/proc/thread-self/net/route', 'latin1').split('\n').slice(1)) {
    const [dev, dest, gw, , , , , mask] = line.trim().split(/\s+/);
    if (dev !== iface || dest !== '00000000' || mask !== '00000000' || !gw || gw === '00000000') continue;
    const b = Buffer.alloc(4);
    b.writeUInt32LE(parseInt(gw, 16));
    return ipv4(b, 0);
  }
  return undefined;
}

function readInterface(sock: number, iface: string): Omit<PodNet, 'tap' | 'tapFd'> {
  const hw = ifreq(iface);
  if (os.ioctlPtr(sock, SIOCGIFHWADDR, hw) < 0) fail('cannot read its MAC address', iface);
  const mac = [...hw.subarray(18, 24)].map((b) => b.toString(16).padStart(2, '0')).join(':');
  const m = ifreq(iface);
  if (os.ioctlPtr(sock, SIOCGIFMTU, m) < 0) fail('cannot read its MTU', iface);
  const mtu = m.readInt32LE(16);
  const a = ifreq(iface);
  if (os.ioctlPtr(sock, SIOCGIFADDR, a) < 0) {
    if (os.errno() === EADDRNOTAVAIL) return { iface, mac, mtu, gateway: defaultGateway(iface) };
    fail('cannot read its IPv4 address', iface);
  }
  const nm = ifreq(iface);
  if (os.ioctlPtr(sock, SIOCGIFNETMASK, nm) < 0) fail('cannot read its netmask', iface);
  const prefix = [...nm.subarray(20, 24)].reduce((n, b) => n + b.toString(2).replace(/0/g, '').length, 0);
  return { iface, mac, mtu, addr: ipv4(a, 20), prefix, gateway: defaultGateway(iface) };
}

/** A tap named `name` in this thread's network namespace, up, with the pod interface's MTU; not persistent. */
function createTap(sock: number, name: string, mtu: number): number {
  let fd: number;
  try {
    fd = openSync('/dev/net/tun', fsc.O_RDWR | fsc.O_NONBLOCK);
  } catch (e) {
    throw new ContainerError(`cannot open /dev/net/tun for the pod's tap: ${(e as Error).message}`);
  }
  try {
    const r = ifreq(name);
    r.writeUInt16LE(IFF_TAP | IFF_NO_PI, 16);
    if (os.ioctlPtr(fd, TUNSETIFF, r) < 0) fail(`cannot create the tap ${name} (TUNSETIFF)`, name);
    const m = ifreq(name);
    m.writeInt32LE(mtu, 16);
    if (os.ioctlPtr(sock, SIOCSIFMTU, m) < 0) fail(`cannot set the MTU of ${name} to ${mtu}`, name);
    const f = ifreq(name);
    if (os.ioctlPtr(sock, SIOCGIFFLAGS, f) < 0) fail('cannot read its flags', name);
    f.writeUInt16LE(f.readUInt16LE(16) | IFF_UP, 16);
    if (os.ioctlPtr(sock, SIOCSIFFLAGS, f) < 0) fail('cannot bring it up', name);
    // Without this the namespace's own IPv6 stack would send the guest its router solicitations.
    try {
      writeFileSync(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1');
    } catch {
      // no IPv6 in this kernel or namespace: nothing to silence
    }
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** ip and tc live in sbin, which the shim's PATH may lack. */
function tool(name: string): string {
  return ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].map((d) => `${d}/${name}`).find((p) => existsSync(p)) ?? name;
}

function run(cmd: 'ip' | 'tc', args: string[], input?: string): { ok: boolean; err: string } {
  const r = spawnSync(tool(cmd), args, { input, encoding: 'utf8', timeout: 10_000 });
  if (r.error) return { ok: false, err: r.error.message };
  return { ok: r.status === 0, err: (r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n')[0] };
}

/** tc mirred, both ways: IFACE's ingress leaves through the tap, the tap's ingress (what the guest sends) through IFACE. */
function redirects(iface: string, tap: string): string {
  const way = (from: string, to: string) => `qdisc add dev ${from} ingress\n` +
    `filter add dev ${from} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev ${to}\n`;
  return way(iface, tap) + way(tap, iface);
}

function tapName(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(6));
  return `tdl${[...b].map((x) => x.toString(16).padStart(2, '0')).join('')}`;
}

/** Run with this thread in the pod's network namespace. */
export function takeOver(spec: PodNetSpec): PodNet {
  const sock = os.socket(os.AF_INET, os.SOCK_DGRAM | os.SOCK_CLOEXEC, 0);
  if (sock < 0) throw new ContainerError(`socket(AF_INET) failed: ${os.strerror(os.errno())}`);
  let tapFd = -1;
  try {
    const info = readInterface(sock, spec.iface);
    const tap = tapName();
    tapFd = createTap(sock, tap, info.mtu);
    const tc = run('tc', ['-batch', '-'], redirects(spec.iface, tap));
    if (!tc.ok) {
      run('tc', ['qdisc', 'del', 'dev', spec.iface, 'ingress']);
      const taken = /exclusivity|exists/i.test(tc.err);
      throw new ContainerError(`annotation ${spec.source}: cannot redirect ${spec.iface} to the guest's tap: ${tc.err}`,
        taken ? `${spec.iface} already has an ingress qdisc: is another unikernel of this pod using it?` : 'tendril needs tc (iproute2) and the kernel\'s ingress qdisc, u32 and mirred');
    }
    const p: PodNet = { ...info, tap, tapFd };
    if (info.addr) {
      const ip = run('ip', ['-4', 'addr', 'del', `${info.addr}/${info.prefix}`, 'dev', spec.iface]);
      if (!ip.ok) {
        giveBack({ ...p, addr: undefined });
        throw new ContainerError(`annotation ${spec.source}: cannot move the pod's address ${info.addr}/${info.prefix} off ${spec.iface}: ${ip.err}`);
      }
    }
    return p;
  } catch (e) {
    if (tapFd >= 0) closeSync(tapFd);
    throw e;
  } finally {
    os.close(sock);
  }
}

/** Undoes takeOver after a failed create (delete does the same in C once the guest is gone). */
export function giveBack(p: PodNet): void {
  run('tc', ['qdisc', 'del', 'dev', p.iface, 'ingress']);
  if (p.addr) run('ip', ['-4', 'addr', 'add', `${p.addr}/${p.prefix}`, 'brd', '+', 'dev', p.iface]);
  if (p.addr && p.gateway) run('ip', ['-4', 'route', 'add', 'default', 'via', p.gateway, 'dev', p.iface]);
}

export function podValues(p: PodNet): PodValues {
  return { ipv4: p.addr, prefix: p.prefix === undefined ? undefined : String(p.prefix), gateway: p.gateway };
}
