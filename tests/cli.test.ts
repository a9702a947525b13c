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

test('--mem=1 is too small: the message says how much the guest needs, not that the image is broken (abi.md §1.1)', async (t) => {
  const r = await tendrilAsync(['run', '--mem=1', hello()]);
  t.is(r.status, 1);
  t.true(oneLine(r.stderr), r.stderr);
  t.regex(r.stderr, /test_hello\.spt: the guest needs --mem=2 or more \(1 MiB is too small for its image\)/);
  t.notRegex(r.stderr, /e_entry|invalid executable/);
});

test('a large --mem still launches (memory is reserved, not touched)', async (t) => {
  const r = await tendrilAsync(['run', '--mem=4096', hello(), 'Hello_Solo5']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /Memory map: 4096 MB addressable/);
});

test('tendril-spt --help: usage on stderr, exit 1, KERNEL (solo5-spt conventions)', (t) => {
  const r = tendrilSpt(['--help']);
  t.is(r.status, 1);
  t.is(r.stdout, '');
  t.regex(r.stderr, /^usage: tendril-spt \[ OPTIONS \] \[ -- \] KERNEL \[ ARGS \]/);
  t.regex(r.stderr, /--mem=MB/);
});

test('tendril run --help: usage on stdout, exit 0 (tendril conventions)', (t) => {
  const r = tendril(['run', '--help']);
  t.is(r.status, 0);
  t.is(r.stderr, '');
  t.regex(r.stdout, /^usage: tendril run \[ OPTIONS \] \[ -- \] GUEST \[ ARGS \]/);
});

test('tendril-spt --version: two lines on stderr, exit 0 (as solo5-spt)', (t) => {
  const r = tendrilSpt(['--version']);
  t.is(r.status, 0);
  t.regex(r.stderr, /^tendril-spt tender, version \d+\.\d+\.\d+\nABI version 2\n$/);
});

test('tendril --version, -v, version and run --version all print the same on stdout, exit 0', (t) => {
  const outs = [['--version'], ['-v'], ['version'], ['run', '--version']].map((a) => tendril(a));
  for (const r of outs) {
    t.is(r.status, 0);
    t.is(r.stderr, '');
    t.regex(r.stdout, /^tendril \d+\.\d+\.\d+\nABI version 2 \(Solo5 spt\)\n$/);
  }
  t.true(outs.every((r) => r.stdout === outs[0].stdout));
});

test('missing GUEST (tendril run) / missing KERNEL (tendril-spt)', (t) => {
  const r = tendril(['run', '--mem=2']);
  t.is(r.status, 1);
  t.true(oneLine(r.stderr));
  t.regex(r.stderr, /^tendril: missing GUEST operand/);
  const s = tendrilSpt(['--mem=2']);
  t.is(s.status, 1);
  t.true(oneLine(s.stderr));
  t.regex(s.stderr, /^tendril-spt: Missing KERNEL operand/);
});

for (const [word, why] of [
  ['--mem', /`--mem': --mem needs a value; write it as one word: --mem=MB \(e\.g\. --mem=64\)/],
  ['--block:storage', /--block:storage needs a value; write it as one word: --block:storage=PATH/],
  ['--net:service0', /--net:service0 needs a value; write it as one word: --net:service0=IFACE/],
  ['--mme=64', /`--mme=64': unknown option; did you mean --mem=64\?/],
  ['--supervize', /did you mean --supervise\?/],
  ['--blokc:storage=disk.img', /did you mean --block:storage=disk\.img\?/],
  ['--gdb=1', /--gdb takes no value/],
  ['--frobnicate', /`--frobnicate': unknown option; see `tendril run --help`/],
  ['--net-mac:service0=01:00:5e:00:00:01', /is a multicast address/],
  ['--net-mac:service0=00:00:00:00:00:00', /all-zero MAC address/],
] as const) {
  test(`option ${word}: one line that says what is wrong and what to write`, (t) => {
    const r = tendril(['run', word, hello()]);
    t.is(r.status, 1);
    t.true(oneLine(r.stderr), r.stderr);
    t.regex(r.stderr, why);
  });
}

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

test('tendril with no verb (usage on stderr, exit 1) or an unknown verb', (t) => {
  const none = tendril([]);
  t.is(none.status, 1);
  t.is(none.stdout, '');
  t.regex(none.stderr, /^usage: tendril VERB/);
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
  t.regex(bad.stdout, /verdict:\s+rejected: \/bin\/true: not a Solo5 spt unikernel: it is a dynamically linked/);
  const small = tendril(['inspect', '--mem=1', guest('test_hello')]);
  t.is(small.status, 1);
  t.regex(small.stdout, /needs --mem=2 or more/);
});

test('an output path that cannot be written is a user error in one line (image build -o, gen-manifest)', (t) => {
  const img = tendril(['image', 'build', hello(), '-o', '/nonexistent/dir/x.tar']);
  t.is(img.status, 1);
  t.true(oneLine(img.stderr), img.stderr);
  t.regex(img.stderr, /^tendril: \/nonexistent\/dir\/x\.tar: cannot write the image: no such directory; create the directory first/);
  t.notRegex(img.stderr, /internal error/);
});
