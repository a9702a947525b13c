// The `run` command line (abi.md §14) with the reference's defects fixed:
// strict --mem (D5, D6), clear one-line errors, exit 1 for every refusal.

import test from 'ava';
import { guest, oneLine, tendril, tendrilAsync, tendrilSpt } from './helpers.js';

const hello = () => guest('test_hello');

for (const [mem, why] of [
  ['0', /between 1 and/], ['-1', /whole number of MiB/], ['2x', /whole number of MiB/], ['abc', /whole number of MiB/],
  ['', /whole number of MiB/], ['1048576', /between 1 and 65536/], ['99999999999999999999', /between 1 and/], ['0x10', /whole number/],
] as const) {
  test(`--mem=${mem} is refused with a clear error (D5/D6)`, async (t) => {
    const r = await tendrilAsync(['run', `--mem=${mem}`, hello()]);
    t.is(r.status, 1);
    t.true(oneLine(r.stderr), r.stderr);
    t.regex(r.stderr, why);
    t.regex(r.stderr, new RegExp(`Invalid option: \`--mem=${mem}'`));
  });
}

test('--mem=1 is too small for the entry point (abi.md §1.1)', async (t) => {
  const r = await tendrilAsync(['run', '--mem=1', hello()]);
  t.is(r.status, 1);
  t.regex(r.stderr, /e_entry does not fall within the memory allocation range/);
});

test('a large --mem still launches (memory is reserved, not touched)', async (t) => {
  const r = await tendrilAsync(['run', '--mem=4096', hello(), 'Hello_Solo5']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /Memory map: 4096 MB addressable/);
});

test('--help prints usage on stderr and exits 1, like solo5-spt', (t) => {
  const r = tendril(['run', '--help']);
  t.is(r.status, 1);
  t.regex(r.stderr, /^usage: tendril run \[ OPTIONS \] \[ -- \] GUEST \[ ARGS \]/);
  t.regex(r.stderr, /--mem=MB/);
});

test('--version prints tendril and ABI versions on stderr, exit 0', (t) => {
  const r = tendrilSpt(['--version']);
  t.is(r.status, 0);
  t.regex(r.stderr, /^tendril tender, version \d+\.\d+\.\d+\nABI version 2\n$/);
});

test('missing GUEST', (t) => {
  const r = tendril(['run', '--mem=2']);
  t.is(r.status, 1);
  t.true(oneLine(r.stderr));
  t.regex(r.stderr, /Missing KERNEL operand/);
});

for (const opt of ['--frobnicate', '-x', '--mem', '--mem-size=2', '--x-exec-heapX', '--net:=tap0', '--net:a_b=tap0', '--block:disk=', '--net-mac:x=zz']) {
  test(`unknown or malformed option ${opt} is refused`, (t) => {
    const r = tendril(['run', opt, hello()]);
    t.is(r.status, 1);
    t.true(oneLine(r.stderr), r.stderr);
    t.regex(r.stderr, /Invalid option/);
  });
}

test('words after GUEST belong to the guest, options included', (t) => {
  const r = tendril(['run', '--mem=2', hello(), '--mem=3', 'x']);
  t.is(r.status, 0);
  t.regex(r.stdout, /Command line is: '--mem=3 x'/);
});

test('-- ends the options', (t) => {
  const r = tendrilSpt(['--mem=2', '--', hello(), 'Hello_Solo5']);
  t.is(r.status, 0);
  t.regex(r.stdout, /SUCCESS/);
});

test('a command line of 8191 bytes is passed whole; 8192 is refused', (t) => {
  // test_cmdline reports the length and last byte it received.
  const ok = tendril(['run', '--mem=2', guest('test_cmdline'), 'a'.repeat(8190) + 'z']);
  t.is(ok.status, 0, ok.stderr);
  t.regex(ok.stdout, /cmdline length 8191, last byte 'z'/);
  const long = tendril(['run', '--mem=2', guest('test_cmdline'), 'a'.repeat(8192)]);
  t.is(long.status, 1);
  t.true(oneLine(long.stderr));
  t.regex(long.stderr, /Guest command line too long \(8192 bytes, max=8191 characters\)/);
  t.is(long.stdout, '');
});

test('--x-exec-heap warns and runs', (t) => {
  const r = tendril(['run', '--x-exec-heap', '--mem=2', hello(), 'Hello_Solo5']);
  t.is(r.status, 0);
  t.regex(r.stderr, /WARNING: --x-exec-heap/);
});

test('tendril with no verb or an unknown verb', (t) => {
  t.is(tendril([]).status, 1);
  const r = tendril(['frob']);
  t.is(r.status, 1);
  t.regex(r.stderr, /unknown verb 'frob'/);
  t.is(tendril(['help']).status, 0);
  t.regex(tendril(['version']).stdout, /ABI version 2/);
});

test('tendril inspect: devices, segments, verdict; JSON form; rejection reason', (t) => {
  const r = tendril(['inspect', guest('test_blk')]);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /abi:\s+spt, version 2/);
  t.regex(r.stdout, /devices:\s+storage \(BLOCK_BASIC, handle 1\)/);
  t.regex(r.stdout, /LOAD\s+--X vaddr 0x100000/); // text is PF_X alone (spt.lds)
  t.regex(r.stdout, /LOAD\s+R-- vaddr 0x103000/); // rodata: read-only, not executable (D3)
  t.regex(r.stdout, /verdict:\s+runnable/);
  const j = JSON.parse(tendril(['inspect', '--json', guest('test_hello')]).stdout);
  t.is(j.runnable, true);
  t.deepEqual(j.abi, { target: 'spt', version: 2 });
  t.deepEqual(j.devices, []);
  t.true(j.minimumMemMiB >= 1 && j.minimumMemMiB <= 2);
  const bad = tendril(['inspect', '/bin/true']);
  t.is(bad.status, 1);
  t.regex(bad.stdout, /verdict:\s+rejected: \/bin\/true: invalid executable/);
  const small = tendril(['inspect', '--mem=1', guest('test_hello')]);
  t.is(small.status, 1);
  t.regex(small.stdout, /e_entry does not fall within/);
});
