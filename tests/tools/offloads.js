#!/usr/bin/env node
// offloads IFACE: prints {"gro":0|1,"gso":0|1} for IFACE, read with the
// SIOCETHTOOL ioctls ETHTOOL_GGRO / ETHTOOL_GGSO (ethtool(8) is not installed
// on the test machine). Run it inside the test's namespace:
//   ip netns exec NS node tests/tools/offloads.js tap100
// Exit 1 with one line on stderr if an ioctl fails.

import koffi from 'koffi';

const SIOCETHTOOL = 0x8946;
const ETHTOOL_GGSO = 0x23;
const ETHTOOL_GGRO = 0x2b;

const iface = process.argv[2];
if (!iface || iface.length > 15) {
  process.stderr.write('usage: offloads IFACE\n');
  process.exit(2);
}
const libc = koffi.load('libc.so.6');
const ioctl = libc.func('ioctl', 'int', ['int', 'ulong', 'void *']);
const socket = libc.func('socket', 'int', ['int', 'int', 'int']);
const strerror = libc.func('strerror', 'str', ['int']);

const sock = socket(2 /* AF_INET */, 2 /* SOCK_DGRAM */, 0);
if (sock < 0) {
  process.stderr.write(`offloads: socket: ${strerror(koffi.errno())}\n`);
  process.exit(1);
}
const out = {};
for (const [name, cmd] of [['gro', ETHTOOL_GGRO], ['gso', ETHTOOL_GGSO]]) {
  const value = Buffer.alloc(8); // struct ethtool_value { u32 cmd; u32 data; }
  value.writeUInt32LE(cmd, 0);
  const ifr = Buffer.alloc(40);
  ifr.write(iface, 0, 15, 'latin1');
  ifr.writeBigUInt64LE(koffi.address(value), 16); // ifr_data
  if (ioctl(sock, SIOCETHTOOL, ifr) < 0) {
    process.stderr.write(`offloads: ${iface}: SIOCETHTOOL ${name}: ${strerror(koffi.errno())}\n`);
    process.exit(1);
  }
  out[name] = value.readUInt32LE(4);
}
process.stdout.write(`${JSON.stringify(out)}\n`);
