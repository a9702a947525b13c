// NET_BASIC (abi.md §9, abi.md §10, abi.md §14, abi.md §16, abi.md §17 D1), for real: each test makes its
// own network namespace with its own taps, runs the guest under tendril and
// the host-side peer (ping) inside it, and deletes the namespace afterwards
// (which deletes the taps). No traffic leaves a namespace a test created.
//
// The floods are serial (ava runs serial tests one at a time, before the
// concurrent ones) so that two floods never share the two cores; their rates
// are logged, never asserted (the machine is noisy: `npm run bench` measures).

import test, { type ExecutionContext } from 'ava';
import { closeSync, openSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { guest, oneLine, ROOT, TENDRIL, waitForGuest, type RunResult } from './helpers.js';
import { guestWithFlood, withNetns, type FloodRun, type Netns, type PingSummary } from './netns.js';

const OFFLOADS = join(ROOT, 'tests/tools/offloads.js');

const TAP100 = { name: 'tap100', addr: '10.0.0.1/24' };
const TAP101 = { name: 'tap101', addr: '10.1.0.1/24' };

/** Long enough for the biggest flood on a loaded 2-core machine; ping's own -w bounds it first. */
const FLOOD_TEST_TIMEOUT = 240_000;

function logFlood(t: ExecutionContext, what: string, p: PingSummary | undefined): void {
  if (!p) return;
  const rate = p.timeMs > 0 ? Math.round((p.received * 1000) / p.timeMs) : 0;
  t.log(`${what}: ${p.summary}`);
  if (p.rtt) t.log(`${what}: ${p.rtt}`);
  t.log(`${what}: ~${rate} replies/s`);
}

/** The guest ended well and each flood got every reply. */
function assertFlood(t: ExecutionContext, run: FloodRun, counts: number[]): void {
  const { guest: g, pings, parsed } = run;
  t.is(g.status, 0, `guest: ${g.stderr}${g.stdout.slice(-2000)}`);
  t.is(g.stderr, '');
  t.is(pings.length, counts.length, 'the floods ran (the guest got ready)');
  counts.forEach((n, i) => {
    t.is(pings[i].status, 0, `ping ${i}: ${pings[i].stdout}${pings[i].stderr}`);
    t.regex(pings[i].stdout, new RegExp(`^${n} packets transmitted, ${n} received, 0% packet loss`, 'm'));
    t.is(parsed[i]?.transmitted, n);
    t.is(parsed[i]?.received, n);
  });
}


/** A refusal (abi.md §13): exit 1, one line on stderr matching `why`, and the guest never ran. */
function assertRefused(t: ExecutionContext, r: RunResult, why: RegExp): void {
  t.is(r.status, 1, `${r.stdout}${r.stderr}`);
  t.true(oneLine(r.stderr), JSON.stringify(r.stderr));
  t.regex(r.stderr, why);
  t.is(r.stdout, '', 'no guest output');
}

// ---------------------------------------------------------------------------
// The abi.md §16 checklist rows

test.serial('test_net: ARP + ICMP echo on 10.0.0.2 answers a 100000-ping flood, then "Limit reached" (abi.md §16)', async (t) => {
  t.timeout(FLOOD_TEST_TIMEOUT);
  await withNetns(t, [TAP100], async (ns) => {
    const run = await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', guest('test_net')],
      floods: [{ addr: '10.0.0.2', count: 100000, deadlineS: 120 }],
    });
    logFlood(t, 'tendril test_net', run.parsed[0]);
    assertFlood(t, run, [100000]);
    t.regex(run.guest.stdout, /Limit reached, exiting/);
    t.regex(run.guest.stdout, /SUCCESS/);
  });
});

test.serial('test_net_2if: two taps, two concurrent 50000-ping floods (abi.md §16)', async (t) => {
  t.timeout(FLOOD_TEST_TIMEOUT);
  await withNetns(t, [TAP100, TAP101], async (ns) => {
    const run = await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', '--net:service1=tap101', guest('test_net_2if')],
      ready: /Serving ping on 10\.0\.0\.2[\s\S]*Serving ping on 10\.1\.0\.2|Serving ping on 10\.1\.0\.2[\s\S]*Serving ping on 10\.0\.0\.2/,
      floods: [
        { addr: '10.0.0.2', count: 50000, deadlineS: 120 },
        { addr: '10.1.0.2', count: 50000, deadlineS: 120 },
      ],
    });
    logFlood(t, 'tendril test_net_2if service0', run.parsed[0]);
    logFlood(t, 'tendril test_net_2if service1', run.parsed[1]);
    assertFlood(t, run, [50000, 50000]);
    t.regex(run.guest.stdout, /SUCCESS/);
  });
});

test.serial('test_net_ring: 10000 flood pings with pattern deadbeef arrive intact (abi.md §16)', async (t) => {
  t.timeout(FLOOD_TEST_TIMEOUT);
  await withNetns(t, [TAP100], async (ns) => {
    const run = await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', guest('test_net_ring')],
      floods: [{ addr: '10.0.0.2', count: 10000, deadlineS: 60, pattern: 'deadbeef' }],
    });
    logFlood(t, 'tendril test_net_ring', run.parsed[0]);
    assertFlood(t, run, [10000]);
    t.regex(run.guest.stdout, /Verified 10000 packets, 0 corrupted/);
    t.regex(run.guest.stdout, /SUCCESS/);
  });
});

test('test_net_mtu: the guest sees the tap\'s MTU, 9000 (abi.md §10, abi.md §16)', async (t) => {
  await withNetns(t, [{ name: 'tap102', addr: '10.2.0.1/24', mtu: 9000 }], async (ns) => {
    const r = await ns.run(process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=tap102', guest('test_net_mtu')]);
    t.is(r.status, 0, `${r.stdout}${r.stderr}`);
    t.regex(r.stdout, /MTU is 9000\b/);
    t.regex(r.stdout, /SUCCESS/);
    t.is(r.stderr, '');
  });
});

test('test_net_mtu: a default tap gives MTU 1500 (abi.md §10)', async (t) => {
  await withNetns(t, [{ name: 'tap102', addr: '10.2.0.1/24' }], async (ns) => {
    const r = await ns.run(process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=tap102', guest('test_net_mtu')]);
    t.is(r.status, 0, `${r.stdout}${r.stderr}`);
    t.regex(r.stdout, /MTU is 1500\b/);
    t.regex(r.stdout, /SUCCESS/);
  });
});

test.serial('test_net on an MTU 9000 tap answers unfragmented 9000-byte packets (read buffer is mtu + 14, abi.md §10)', async (t) => {
  t.timeout(FLOOD_TEST_TIMEOUT);
  await withNetns(t, [{ ...TAP100, mtu: 9000 }], async (ns) => {
    let big: RunResult | undefined;
    const run = await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', guest('test_net'), '20'],
      // 8972 bytes of ICMP data + 8 + 20 = a 9000-byte IP packet, don't fragment
      onReady: async () => {
        big = await ns.run('ping', ['-q', '-c', '10', '-i', '0.01', '-w', '20', '-M', 'do', '-s', '8972', '10.0.0.2'], { timeoutMs: 30_000 });
      },
      floods: [{ addr: '10.0.0.2', count: 10, deadlineS: 30 }],
    });
    t.is(big?.status, 0, `${big?.stdout}${big?.stderr}`);
    t.regex(big?.stdout ?? '', /^10 packets transmitted, 10 received/m);
    assertFlood(t, run, [10]);
    t.regex(run.guest.stdout, /MTU 9000/);
  });
});

// ---------------------------------------------------------------------------
// @FD (D1) and --net-mac

test.serial('--net:NAME=@FD: a tap opened by the caller as fd 3 serves a flood (D1)', async (t) => {
  t.timeout(FLOOD_TEST_TIMEOUT);
  await withNetns(t, [TAP100], async (ns) => {
    const run = await guestWithFlood(ns, {
      tapFd: 'tap100',
      tendrilArgs: ['run', '--mem=2', '--net:service0=@3', guest('test_net'), '1000'],
      floods: [{ addr: '10.0.0.2', count: 1000, deadlineS: 30 }],
    });
    logFlood(t, 'tendril test_net via @3', run.parsed[0]);
    assertFlood(t, run, [1000]);
    t.regex(run.guest.stdout, /Limit reached, exiting/);
    t.regex(run.guest.stdout, /SUCCESS/);
  });
});

test('--net:NAME=@FD: the guest gets the MTU of the passed tap, 9000 (the reference never sets it: D1)', async (t) => {
  await withNetns(t, [{ name: 'tap102', addr: '10.2.0.1/24', mtu: 9000 }], async (ns) => {
    const r = await ns.withTapFd('tap102', process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=@3', guest('test_net_mtu')]).done;
    t.is(r.status, 0, `${r.stdout}${r.stderr}`);
    t.regex(r.stdout, /MTU is 9000\b/);
    t.regex(r.stdout, /SUCCESS/);
    t.is(r.stderr, '');
  });
});

test('--net:NAME=@FD: a tap opened with a vnet header is refused (the guest needs plain frames)', async (t) => {
  await withNetns(t, [TAP100], async (ns) => {
    const r = await ns.withTapFd('tap100', process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=@3', guest('test_net')],
      { timeoutMs: 20_000 }, ['--vnet-hdr']).done;
    assertRefused(t, r, /@3/);
    t.regex(r.stderr, /vnet|packet-info/);
  });
});

// TUNGETIFF ORs IFF_NOFILTER (0x1000, the same bit as IFF_NO_PI) into its
// flags when no socket filter is attached; tendril attaches an accept-all
// filter for the query so it can see a packet-info tap. (Were the guest to
// start, it would read frames with a 4-byte header and answer nothing; it is
// killed after 10 s.)
test('--net:NAME=@FD: a tap opened with packet information (no IFF_NO_PI) is refused', async (t) => {
  await withNetns(t, [TAP100], async (ns) => {
    const r = await ns.withTapFd('tap100', process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=@3', guest('test_net')],
      { timeoutMs: 10_000 }, ['--pi']).done;
    assertRefused(t, r, /@3/);
  });
});

/** Reads GRO/GSO of a tap from inside the namespace (tests/tools/offloads.js). */
async function offloads(ns: Netns, tap: string): Promise<unknown> {
  const r = await ns.run(process.execPath, [OFFLOADS, tap], { timeoutMs: 10_000 });
  if (r.status !== 0) throw new Error(`offloads ${tap}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test.serial('a running guest\'s tap has GRO and GSO off (abi.md §10)', async (t) => {
  t.timeout(FLOOD_TEST_TIMEOUT);
  await withNetns(t, [TAP100], async (ns) => {
    t.deepEqual(await offloads(ns, 'tap100'), { gro: 1, gso: 1 }, 'the kernel\'s defaults for a new tap');
    let during: unknown;
    const run = await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', guest('test_net'), '10'],
      onReady: async () => {
        during = await offloads(ns, 'tap100');
      },
      floods: [{ addr: '10.0.0.2', count: 10, deadlineS: 30 }],
    });
    assertFlood(t, run, [10]);
    t.deepEqual(during, { gro: 0, gso: 0 });
  });
});

test('--net:NAME=@FD: the passed tap has GRO and GSO off too (abi.md §10)', async (t) => {
  t.timeout(FLOOD_TEST_TIMEOUT);
  await withNetns(t, [TAP100], async (ns) => {
    let during: unknown;
    const run = await guestWithFlood(ns, {
      tapFd: 'tap100',
      tendrilArgs: ['run', '--mem=2', '--net:service0=@3', guest('test_net'), '10'],
      onReady: async () => {
        during = await offloads(ns, 'tap100');
      },
      floods: [{ addr: '10.0.0.2', count: 10, deadlineS: 30 }],
    });
    assertFlood(t, run, [10]);
    t.deepEqual(during, { gro: 0, gso: 0 });
  });
});

// With @FD the tap's name means something only in the tap's own network
// namespace (TUNGETDEVNETNS): its MTU is read there, not in tendril's.
test('--net:NAME=@FD: a tap from another network namespace gets its own MTU, 9000', async (t) => {
  await withNetns(t, [{ name: 'tap100', addr: '10.2.0.1/24', mtu: 9000 }], async (tapNs) => {
    await withNetns(t, [], async (guestNs) => {
      const r = await tapNs.withTapFd('tap100', 'ip', ['netns', 'exec', guestNs.name,
        process.execPath, TENDRIL, 'run', '--mem=2', '--net:service0=@3', guest('test_net_mtu')], { timeoutMs: 20_000 }).done;
      t.is(r.status, 0, `${r.stdout}${r.stderr}`);
      t.regex(r.stdout, /MTU is 9000\b/);
    });
  });
});

test.serial('--net-mac:NAME= sets the MAC the guest uses on the wire (abi.md §10)', async (t) => {
  t.timeout(FLOOD_TEST_TIMEOUT);
  const mac = '02:00:5e:12:34:56';
  await withNetns(t, [TAP100], async (ns) => {
    // Asked while the guest runs: when it exits the tap loses its carrier and the kernel flushes
    // the tap's ARP entries. One ping resolves the address, the flood sends the rest of the 10.
    let neigh: RunResult | undefined;
    let first: RunResult | undefined;
    const run = await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', `--net-mac:service0=${mac}`, guest('test_net'), '10'],
      floods: [{ addr: '10.0.0.2', count: 9, deadlineS: 30 }],
      onReady: async () => {
        first = await ns.run('ping', ['-c', '1', '-w', '10', '10.0.0.2'], { timeoutMs: 20_000 });
        neigh = await ns.run('ip', ['neigh', 'show', '10.0.0.2', 'dev', 'tap100'], { timeoutMs: 10_000 });
      },
    });
    t.is(first?.status, 0, `${first?.stdout}${first?.stderr}`);
    assertFlood(t, run, [9]);
    t.regex(run.guest.stdout, new RegExp(`MAC ${mac}`), 'the guest was given the MAC');
    t.is(neigh?.status, 0, neigh?.stderr);
    t.regex(neigh?.stdout ?? '', new RegExp(`^10\\.0\\.0\\.2 lladdr ${mac}\\b`, 'm'), 'ARP learnt the MAC from the wire');
  });
});

test.serial('without --net-mac the MAC is random, unicast and locally administered (abi.md §10)', async (t) => {
  t.timeout(FLOOD_TEST_TIMEOUT);
  await withNetns(t, [TAP100], async (ns) => {
    const run = await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', guest('test_net'), '10'],
      floods: [{ addr: '10.0.0.2', count: 10, deadlineS: 30 }],
    });
    assertFlood(t, run, [10]);
    const m = /MAC ([0-9a-f]{2}):([0-9a-f:]{14})/.exec(run.guest.stdout);
    t.truthy(m, run.guest.stdout);
    const first = parseInt(m![1], 16);
    t.is(first & 0x01, 0, 'unicast');
    t.is(first & 0x02, 0x02, 'locally administered');
  });
});

// ---------------------------------------------------------------------------
// What the running guest holds

test.serial('a running net guest holds exactly stdio, its tap, the epoll set and the timerfd', async (t) => {
  t.timeout(FLOOD_TEST_TIMEOUT);
  await withNetns(t, [TAP100], async (ns) => {
    let fdLinks: string[] = [];
    let fds: number[] = [];
    let status = '';
    const run = await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', guest('test_net'), '1000'],
      floods: [{ addr: '10.0.0.2', count: 1000, deadlineS: 30 }],
      onReady: async (g) => {
        status = await waitForGuest(g.pid);
        fds = readdirSync(`/proc/${g.pid}/fd`).map(Number).sort((a, b) => a - b);
        fdLinks = fds.map((fd) => readlinkSync(`/proc/${g.pid}/fd/${fd}`));
      },
    });
    assertFlood(t, run, [1000]);
    t.regex(status, /^NoNewPrivs:\s+1$/m);
    t.is(fds.length, 6, `fds: ${fds.map((fd, i) => `${fd} -> ${fdLinks[i]}`).join(', ')}`);
    t.deepEqual(fds.slice(0, 3), [0, 1, 2]);
    t.deepEqual(fdLinks.slice(3).sort(), ['/dev/net/tun', 'anon_inode:[eventpoll]', 'anon_inode:[timerfd]']);
  });
});

// ---------------------------------------------------------------------------
// Refusals: exit 1, one clear line, the guest never starts (abi.md §10, abi.md §13, abi.md §14)

test('a missing interface is refused', async (t) => {
  await withNetns(t, [TAP100], async (ns) => {
    const r = await ns.run(process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=tap199', guest('test_net')]);
    assertRefused(t, r, /tap199/);
    t.regex(r.stderr, /no such (interface|device)|No such file/i);
  });
});

test('an interface that is down is refused', async (t) => {
  await withNetns(t, [{ ...TAP100, up: false }], async (ns) => {
    const r = await ns.run(process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=tap100', guest('test_net')]);
    assertRefused(t, r, /tap100/);
    t.regex(r.stderr, /down/i);
  });
});

test('an interface that is not a tap (a tun) is refused', async (t) => {
  await withNetns(t, [], async (ns) => {
    const add = await ns.run('ip', ['tuntap', 'add', 'tun100', 'mode', 'tun'], { timeoutMs: 10_000 });
    t.is(add.status, 0, add.stderr);
    const up = await ns.run('ip', ['link', 'set', 'tun100', 'up'], { timeoutMs: 10_000 });
    t.is(up.status, 0, up.stderr);
    const r = await ns.run(process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=tun100', guest('test_net')]);
    assertRefused(t, r, /tun100/);
  });
});

test('--net:NAME=@3 where fd 3 is /dev/null is refused (D1)', async (t) => {
  await withNetns(t, [TAP100], async (ns) => {
    const devnull = openSync('/dev/null', 'r+');
    let r: RunResult;
    try {
      r = await ns.run(process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=@3', guest('test_net')],
        { stdio: ['ignore', 'pipe', 'pipe', devnull] });
    } finally {
      closeSync(devnull);
    }
    assertRefused(t, r, /@3/);
    t.regex(r.stderr, /not .*tap/i);
  });
});

test('--net:NAME=@3 where fd 3 is not open is refused (D1)', async (t) => {
  await withNetns(t, [TAP100], async (ns) => {
    const r = await ns.run(process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=@3', guest('test_net')]);
    assertRefused(t, r, /@3/);
  });
});

test('a --net name the manifest does not declare is refused (abi.md §14)', async (t) => {
  await withNetns(t, [TAP100, TAP101], async (ns) => {
    const r = await ns.run(process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=tap100', '--net:service1=tap101', guest('test_net')]);
    assertRefused(t, r, /Resource not declared in manifest: 'service1'/);
  });
});

test('a declared net device left unattached is refused (abi.md §14)', async (t) => {
  await withNetns(t, [TAP100], async (ns) => {
    const r = await ns.run(process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=tap100', guest('test_net_2if')]);
    assertRefused(t, r, /Device 'service1' of type NET_BASIC declared but not attached/);
  });
});

test('a net device with no --net at all is refused (abi.md §14)', async (t) => {
  await withNetns(t, [TAP100], async (ns) => {
    const r = await ns.run(process.execPath, [TENDRIL, 'run', '--mem=2', guest('test_net')]);
    assertRefused(t, r, /Device 'service0' of type NET_BASIC declared but not attached/);
  });
});

test.serial('a second guest on a tap already in use is refused (busy); the first one carries on', async (t) => {
  t.timeout(FLOOD_TEST_TIMEOUT);
  await withNetns(t, [TAP100], async (ns) => {
    let second: RunResult | undefined;
    const run = await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', guest('test_net'), '100'],
      floods: [{ addr: '10.0.0.2', count: 100, deadlineS: 30 }],
      onReady: async () => {
        second = await ns.run(process.execPath, [TENDRIL, 'run', '--mem=2', '--net:service0=tap100', guest('test_net')]);
      },
    });
    t.truthy(second, 'the second guest was launched');
    assertRefused(t, second!, /tap100/);
    t.regex(second!.stderr, /busy/i);
    assertFlood(t, run, [100]);
    t.regex(run.guest.stdout, /SUCCESS/);
  });
});
