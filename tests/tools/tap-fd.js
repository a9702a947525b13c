#!/usr/bin/env node
// tap-fd [--pi] [--vnet-hdr] TAPNAME -- CMD ARGS...
//
// Opens /dev/net/tun, attaches it to the existing tap TAPNAME with
// TUNSETIFF(IFF_TAP|IFF_NO_PI), and runs CMD with that fd as its fd 3, the
// way a caller hands a pre-opened tap to `tendril run --net:NAME=@3` (spec
// abi.md §17 D1). Exits with CMD's status; a death by signal N becomes 128 + N, as
// a shell would report it. Errors of its own: status 2 (usage) or 1.
// --pi (no IFF_NO_PI: a packet-info header on every frame) and --vnet-hdr
// (IFF_VNET_HDR) open the tap in a framing the guest cannot use, so tests
// can check that tendril refuses such an fd.
//
// Run it inside the test's network namespace:
//   ip netns exec NS node tests/tools/tap-fd.js tap100 -- node bin/tendril.cjs run --net:service0=@3 guest.spt

import { spawn } from 'node:child_process';
import { closeSync, constants as fsc, existsSync, openSync } from 'node:fs';
import { constants as osc } from 'node:os';
import koffi from 'koffi';

const IFNAMSIZ = 16;
const IFREQ_SIZE = 40;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const TUNSETIFF = 0x400454ca;

const argv = process.argv.slice(2);
let flags = IFF_TAP | IFF_NO_PI;
while (argv[0] === '--pi' || argv[0] === '--vnet-hdr') {
  const opt = argv.shift();
  if (opt === '--pi') flags &= ~IFF_NO_PI;
  else flags |= IFF_VNET_HDR;
}
const [tap, sep, cmd, ...args] = argv;
if (!tap || sep !== '--' || !cmd) {
  process.stderr.write('usage: tap-fd [--pi] [--vnet-hdr] TAPNAME -- CMD [ARGS...]\n');
  process.exit(2);
}
if (tap.length >= IFNAMSIZ) {
  process.stderr.write(`tap-fd: ${tap}: interface name too long (max ${IFNAMSIZ - 1})\n`);
  process.exit(1);
}

// TUNSETIFF on a name that does not exist would quietly create a new tap: refuse instead.
if (!existsSync(`/sys/class/net/${tap}`)) {
  process.stderr.write(`tap-fd: ${tap}: no such interface (in this network namespace)\n`);
  process.exit(1);
}

const libc = koffi.load('libc.so.6');
const ioctl = libc.func('ioctl', 'int', ['int', 'ulong', 'void *']);
const strerror = libc.func('strerror', 'str', ['int']);

let fd;
try {
  fd = openSync('/dev/net/tun', fsc.O_RDWR);
} catch (e) {
  process.stderr.write(`tap-fd: cannot open /dev/net/tun: ${e.message}\n`);
  process.exit(1);
}
const ifr = Buffer.alloc(IFREQ_SIZE);
ifr.write(tap, 0, IFNAMSIZ - 1, 'latin1');
ifr.writeUInt16LE(flags, 16);
if (ioctl(fd, TUNSETIFF, ifr) < 0) {
  const err = koffi.errno();
  process.stderr.write(`tap-fd: TUNSETIFF ${tap}: ${strerror(err)}\n`);
  process.exit(1);
}

// spawn dup2()s fd onto the child's fd 3, which clears close-on-exec there.
const child = spawn(cmd, args, { stdio: ['inherit', 'inherit', 'inherit', fd] });
closeSync(fd); // the child holds the tap now; ours would keep it busy after the child exits
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => child.kill(sig));
}
child.on('error', (e) => {
  process.stderr.write(`tap-fd: cannot run ${cmd}: ${e.message}\n`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  process.exit(signal ? 128 + (osc.signals[signal] ?? 0) : (code ?? 1));
});
