// Every validation rule of abi.md §5–§6: a bad image is rejected before anything
// runs, with exit status 1 and one line that names the file and the problem.

import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TendrilError } from '../loader/errors.js';
import { checkMemory, parseGuestImage } from '../loader/image.js';
import { BAD_ELF_CASES } from './fixtures/bad-elf.js';
import { guest, oneLine, Pool, ROOT, tendrilAsync, withTempDir } from './helpers.js';

const valid = () => readFileSync(guest('test_hello'));

/** The loader's verdict in-process, as `tendril run` reaches it: the message of the error it throws, or 'ok'. */
function verdict(bytes: Buffer, memMiB = 2): string {
  try {
    const img = parseGuestImage('guest.spt', bytes);
    checkMemory(img, BigInt(memMiB) << 20n, '--mem', memMiB);
    return 'ok';
  } catch (e) {
    if (e instanceof TendrilError) return e.message;
    throw e;
  }
}

test('the unmodified fixture base is accepted', (t) => {
  t.is(verdict(valid()), 'ok');
});

for (const c of BAD_ELF_CASES) {
  test(`rejects ${c.name} (${c.rule})`, (t) => {
    const msg = verdict(c.mutate(valid()), c.memMiB);
    t.regex(msg, c.expect);
    t.true(msg.startsWith('guest.spt: '), 'the message names the file');
  });
}

test('every bad image is refused by `tendril run` with exit 1 and one line', async (t) => {
  await withTempDir(async (dir) => {
    const pool = new Pool(4);
    const results = await Promise.all(BAD_ELF_CASES.map((c, i) => pool.run(async () => {
      const file = join(dir, `bad${i}.spt`);
      writeFileSync(file, c.mutate(valid()));
      return { c, file, r: await tendrilAsync(['run', `--mem=${c.memMiB ?? 2}`, file]) };
    })));
    for (const { c, file, r } of results) {
      t.is(r.status, 1, `${c.name}: status`);
      t.is(r.stdout, '', `${c.name}: the guest must not have run`);
      t.true(oneLine(r.stderr), `${c.name}: one line, got ${JSON.stringify(r.stderr)}`);
      t.regex(r.stderr, c.expect, c.name);
      t.true(r.stderr.includes(file), `${c.name}: names the file`);
    }
  });
});

test('a host program (ET_DYN), a source file and an object file are rejected (exit 1, as the reference) saying what they are', async (t) => {
  const r = await tendrilAsync(['run', '/bin/true']);
  t.is(r.status, 1);
  t.true(oneLine(r.stderr), r.stderr);
  t.regex(r.stderr, /\/bin\/true: not a Solo5 spt unikernel: it is a dynamically linked or position-independent program \(ELF type ET_DYN\), such as an ordinary Linux program; tendril runs Solo5 unikernels built for the spt target/);
  const src = await tendrilAsync(['run', join(ROOT, 'tests/guests/test_hello.c')]);
  t.is(src.status, 1);
  t.regex(src.stderr, /test_hello\.c: not a Solo5 spt unikernel: it is a text file \(source code\?\), not an ELF file/);
  const obj = await tendrilAsync(['run', join(ROOT, 'native/build/bindings.o')]);
  t.is(obj.status, 1);
  t.regex(obj.stderr, /bindings\.o: not a Solo5 spt unikernel: it is an object file \(ELF type ET_REL\), not a linked program/);
});

test('a missing guest file is a clear error', async (t) => {
  const r = await tendrilAsync(['run', '/nonexistent/guest.spt']);
  t.is(r.status, 1);
  t.true(oneLine(r.stderr));
  t.regex(r.stderr, /\/nonexistent\/guest\.spt: Could not open: No such file or directory/);
});

test('a directory as guest is a clear error', async (t) => {
  const r = await tendrilAsync(['run', '/tmp']);
  t.is(r.status, 1);
  t.regex(r.stderr, /\/tmp: Could not open: Is a directory/);
});
