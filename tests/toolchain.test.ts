// The guest toolchain (abi.md §5): `tendril cc` and `tendril elftool`. Guests
// built here must also load on the reference tender, so their layout is
// checked byte for byte against what abi.md §5 says the reference looks for.

import test from 'ava';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { phdrs } from './fixtures/bad-elf.js';
import { guest, oneLine, ROOT, runCmd, tendril, withTempDir } from './helpers.js';

const PT_LOAD = 1;
const PT_INTERP = 3;
const PT_NOTE = 4;

test('query-abi and query-manifest describe a guest', (t) => {
  const abi = tendril(['elftool', 'query-abi', guest('test_hello')]);
  t.is(abi.status, 0);
  t.deepEqual(JSON.parse(abi.stdout), { type: 'solo5.abi', target: 'spt', version: 2 });
  const mft = tendril(['elftool', 'query-manifest', guest('test_net_2if')]);
  t.is(mft.status, 0);
  t.deepEqual(JSON.parse(mft.stdout), {
    type: 'solo5.manifest', version: 1,
    devices: [{ name: 'service0', type: 'NET_BASIC' }, { name: 'service1', type: 'NET_BASIC' }],
  });
});

test('gen-manifest refuses 64 devices ("too many entries, maximum 63") and writes nothing', async (t) => {
  await withTempDir((dir) => {
    const out = join(dir, 'mft.S');
    const r = tendril(['elftool', 'gen-manifest', join(ROOT, 'tests/guests/test_too_many_entries.json'), out]);
    t.is(r.status, 1);
    t.true(oneLine(r.stderr));
    t.regex(r.stderr, /too many entries, maximum 63/);
    t.false(existsSync(out));
  });
});

test('tendril cc builds a guest from C that runs; its manifest round-trips', async (t) => {
  await withTempDir((dir) => {
    writeFileSync(join(dir, 'app.c'), `#include <solo5.h>
static const char msg[] = "built by tendril cc\\n";
int solo5_app_main(const struct solo5_start_info *si) {
    struct solo5_block_info bi; solo5_handle_t h;
    (void)si;
    solo5_console_write(msg, sizeof msg - 1);
    return solo5_block_acquire("disk", &h, &bi) == SOLO5_R_OK && bi.block_size == 512 ? 42 : 1;
}
`);
    writeFileSync(join(dir, 'm.json'), JSON.stringify({ type: 'solo5.manifest', version: 1, devices: [{ name: 'disk', type: 'BLOCK_BASIC' }] }));
    writeFileSync(join(dir, 'disk.img'), Buffer.alloc(4096));
    const out = join(dir, 'app.spt');
    const cc = tendril(['cc', '--manifest', join(dir, 'm.json'), '-o', out, join(dir, 'app.c')]);
    t.is(cc.status, 0, cc.stderr);
    t.deepEqual(JSON.parse(tendril(['elftool', 'query-manifest', out]).stdout).devices, [{ name: 'disk', type: 'BLOCK_BASIC' }]);
    const r = tendril(['run', '--mem=2', `--block:disk=${join(dir, 'disk.img')}`, out, '--solo5:quiet']);
    t.is(r.status, 42, r.stderr);
    t.is(r.stdout, 'built by tendril cc\n');
  });
});

test('tendril cc: a compile error or a missing -o is one clear line, exit 1', async (t) => {
  await withTempDir((dir) => {
    writeFileSync(join(dir, 'bad.c'), 'int solo5_app_main(void) { return undeclared; }\n');
    const r = tendril(['cc', '-o', join(dir, 'bad.spt'), join(dir, 'bad.c')]);
    t.is(r.status, 1);
    t.regex(r.stderr.trim().split('\n').pop()!, /^tendril: gcc failed \(exit status 1\) building .*bad\.spt; see the compiler messages above$/);
    const noOut = tendril(['cc', join(dir, 'bad.c')]);
    t.is(noOut.status, 1);
    t.regex(noOut.stderr, /missing -o OUT/);
    t.false(existsSync(join(dir, 'bad.spt')));
  });
});

test('layout the reference tender needs (abi.md §5, abi.md §6): ET_EXEC, PT_INTERP, notes in their own PT_NOTEs, OpenBSD note first', (t) => {
  const elf = readFileSync(guest('test_hello'));
  t.is(elf.readUInt16LE(16), 2, 'ET_EXEC');
  t.is(elf.readUInt16LE(18), 62, 'EM_X86_64');
  const ph = phdrs(elf);
  const interp = ph.find((p) => p.type === PT_INTERP)!;
  t.is(elf.toString('latin1', Number(interp.offset), Number(interp.offset) + 20), '/nonexistent/solo5/\0');
  const notes = ph.filter((p) => p.type === PT_NOTE).map((p) => elf.subarray(Number(p.offset), Number(p.offset + p.filesz)));
  t.is(notes.length, 3);
  // The first PT_NOTE is OpenBSD's NT_VERSION note, so OpenBSD refuses to run it natively.
  t.deepEqual([...notes[0].subarray(0, 12)], [8, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0]);
  t.is(notes[0].toString('latin1', 12, 20), 'OpenBSD\0');
  // The ABI note, byte for byte as abi.md §5.1 shows test_hello's.
  t.deepEqual([...notes[1].subarray(0, 20)], [0x06, 0, 0, 0, 0x10, 0, 0, 0, 0x41, 0x42, 0x49, 0x31, 0x53, 0x6f, 0x6c, 0x6f, 0x35, 0, 0, 0]);
  t.deepEqual([...notes[1].subarray(20, 36)], [2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  // The manifest note: 8-aligned descriptor after 4 bytes of padding, n_descsz = 4 + 8 + 104 * entries.
  t.is(notes[2].readUInt32LE(4), 4 + 8 + 104 * 1);
  t.is(notes[2].readUInt32LE(8), 0x3154464d);
  t.is(notes[2].readUInt32LE(24), 1, 'manifest version');
  t.is(notes[2].readUInt32LE(28), 1, 'entries');
  const loads = ph.filter((p) => p.type === PT_LOAD && p.filesz > 0n);
  t.is(loads[0].vaddr, 0x100000n, '.text at TEXT_START');
  t.is(loads[0].flags, 1, '.text is PF_X alone');
  t.is(loads[1].flags, 4, '.rodata is read-only, not executable (D3)');
  for (const l of ph.filter((p) => p.type === PT_LOAD)) t.false((l.flags & 2) !== 0 && (l.flags & 1) !== 0, 'no W+X segment');
});

test('a guest cannot be run directly as a host program (PT_INTERP points nowhere)', (t) => {
  const r = runCmd('sh', ['-c', `${guest('test_hello')}; echo status=$?`]);
  t.regex(r.stdout, /status=127/);
});
