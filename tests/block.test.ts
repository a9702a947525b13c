// BLOCK_BASIC devices (abi.md §11, abi.md §14) with real files: guest I/O through the
// filter, the tender's checks on the backing storage, read-only disks, fds
// passed in, and up to 63 devices (abi.md §5.2). A disk image is never damaged by
// tendril's own errors.

import test from 'ava';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { guest, oneLine, runCmdAsync, TENDRIL, tendrilAsync, withTempDir } from './helpers.js';

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

function image(dir: string, name: string, size: number, fill = 0): string {
  const p = join(dir, name);
  writeFileSync(p, Buffer.alloc(size, fill));
  return p;
}

test('test_blk: whole-block I/O, every 10th block and the last, bad calls rejected (512-byte sectors)', async (t) => {
  await withTempDir(async (dir) => {
    const disk = image(dir, 'disk.img', 4 << 20);
    const r = await tendrilAsync(['run', '--mem=2', `--block:storage=${disk}`, guest('test_blk')]);
    t.is(r.status, 0, r.stdout + r.stderr);
    t.regex(r.stdout, /SUCCESS/);
  });
});

test('test_blk with --block-sector-size:storage=4096', async (t) => {
  await withTempDir(async (dir) => {
    const disk = image(dir, 'disk.img', 4 << 20);
    const r = await tendrilAsync(['run', '--mem=2', `--block-sector-size:storage=4096`, `--block:storage=${disk}`, guest('test_blk')]);
    t.is(r.status, 0, r.stdout + r.stderr);
    t.regex(r.stdout, /SUCCESS/);
  });
});

for (const [what, size, sector, expect] of [
  ['misaligned 6 KiB image with 4096-byte sectors', 6144, 4096, /Backing storage size must be block aligned \(4096 bytes\)/],
  ['odd 1563-byte image', 1563, 512, /Backing storage size must be block aligned \(512 bytes\)/],
  ['256-byte image, smaller than a sector', 256, 512, /Backing storage size must be block aligned \(512 bytes\)/],
  ['empty image', 0, 512, /Backing storage must be at least 1 block \(512 bytes\)/],
] as const) {
  test(`the tender refuses a ${what}, leaving it untouched`, async (t) => {
    await withTempDir(async (dir) => {
      const disk = image(dir, 'disk.img', size, 0x5a);
      const before = sha(disk);
      const r = await tendrilAsync(['run', '--mem=2', `--block-sector-size:storage=${sector}`, `--block:storage=${disk}`, guest('test_blk')]);
      t.is(r.status, 1);
      t.true(oneLine(r.stderr), r.stderr);
      t.regex(r.stderr, expect);
      t.is(r.stdout, '');
      t.is(sha(disk), before);
    });
  });
}

for (const n of ['521', '256', '0', '65536', 'x']) {
  test(`--block-sector-size=${n} is refused`, async (t) => {
    const r = await tendrilAsync(['run', `--block-sector-size:storage=${n}`, '--block:storage=/dev/null', guest('test_blk')]);
    t.is(r.status, 1);
    t.true(oneLine(r.stderr));
    t.regex(r.stderr, /Invalid option: `--block-sector-size:storage=/);
  });
}

test('--block-ro: the guest cannot write, its reads work, the file is unchanged byte for byte', async (t) => {
  await withTempDir(async (dir) => {
    const disk = image(dir, 'disk.img', 64 << 10, 0xa5);
    const before = sha(disk);
    const r = await tendrilAsync(['run', '--mem=2', `--block-ro:storage=${disk}`, guest('test_blk_ro')]);
    t.is(r.status, 0, r.stdout + r.stderr);
    t.regex(r.stdout, /SUCCESS/);
    t.is(sha(disk), before);
  });
});

test('--block:NAME=@FD takes a disk opened by the caller', async (t) => {
  await withTempDir(async (dir) => {
    const disk = image(dir, 'disk.img', 4 << 20);
    const fd = openSync(disk, 'r+');
    try {
      const r = await runCmdAsync(process.execPath, [TENDRIL, 'run', '--mem=2', '--block:storage=@3', guest('test_blk')],
        { stdio: ['ignore', 'pipe', 'pipe', fd] });
      t.is(r.status, 0, r.stdout + r.stderr);
      t.regex(r.stdout, /SUCCESS/);
    } finally {
      closeSync(fd);
    }
  });
});

test('--block-ro:NAME=@FD with a read-write fd still cannot write', async (t) => {
  await withTempDir(async (dir) => {
    const disk = image(dir, 'disk.img', 64 << 10, 0x11);
    const before = sha(disk);
    const fd = openSync(disk, 'r+');
    try {
      const r = await runCmdAsync(process.execPath, [TENDRIL, 'run', '--mem=2', '--block-ro:storage=@3', guest('test_blk_ro')],
        { stdio: ['ignore', 'pipe', 'pipe', fd] });
      t.is(r.status, 0, r.stdout + r.stderr);
      t.regex(r.stdout, /SUCCESS/);
    } finally {
      closeSync(fd);
    }
    t.is(sha(disk), before);
  });
});

test('--block:NAME=@FD: a read-only fd without --block-ro, and a fd that is not open, are refused', async (t) => {
  await withTempDir(async (dir) => {
    const disk = image(dir, 'disk.img', 4 << 20);
    const fd = openSync(disk, 'r');
    try {
      const r = await runCmdAsync(process.execPath, [TENDRIL, 'run', '--block:storage=@3', guest('test_blk')],
        { stdio: ['ignore', 'pipe', 'pipe', fd] });
      t.is(r.status, 1);
      t.regex(r.stderr, /fd 3 is open read-only/);
    } finally {
      closeSync(fd);
    }
    const r2 = await tendrilAsync(['run', '--block:storage=@900', guest('test_blk')]);
    t.is(r2.status, 1);
    t.regex(r2.stderr, /fd 900 is not open/);
  });
});

test('missing files, directories and special files are clear errors', async (t) => {
  await withTempDir(async (dir) => {
    mkdirSync(join(dir, 'sub'));
    for (const [path, expect] of [
      [join(dir, 'nope.img'), /Could not open block device: .*nope\.img: No such file or directory/],
      [join(dir, 'sub'), /Is a directory|is a directory/],
      ['/dev/null', /not a regular file or block device \(it is \/dev\/null\)/],
    ] as const) {
      const r = await tendrilAsync(['run', `--block:storage=${path}`, guest('test_blk')]);
      t.is(r.status, 1, path);
      t.true(oneLine(r.stderr), r.stderr);
      t.regex(r.stderr, expect);
    }
  });
});

test('device names are checked against the manifest (abi.md §14)', async (t) => {
  await withTempDir(async (dir) => {
    const disk = image(dir, 'disk.img', 4096);
    const undeclared = await tendrilAsync(['run', `--block:storage=${disk}`, `--block:other=${disk}`, guest('test_blk')]);
    t.is(undeclared.status, 1);
    t.regex(undeclared.stderr, /Resource not declared in manifest: 'other'/);
    const wrongType = await tendrilAsync(['run', '--net:storage=tap0', guest('test_blk')]);
    t.is(wrongType.status, 1);
    t.regex(wrongType.stderr, /Resource not declared in manifest: 'storage' as NET_BASIC \(it is declared as BLOCK_BASIC\)/);
    const unattached = await tendrilAsync(['run', guest('test_blk')]);
    t.is(unattached.status, 1);
    t.regex(unattached.stderr, /Device 'storage' of type BLOCK_BASIC declared but not attached/);
    const onGuestWithout = await tendrilAsync(['run', `--block:storage=${disk}`, guest('test_hello')]);
    t.is(onGuestWithout.status, 1);
    t.regex(onGuestWithout.stderr, /Resource not declared in manifest: 'storage'.*the guest declares: none/);
  });
});

test('option order does not matter; duplicates are refused', async (t) => {
  await withTempDir(async (dir) => {
    const disk = image(dir, 'disk.img', 4 << 20);
    const r = await tendrilAsync(['run', `--block:storage=${disk}`, '--mem=2', '--block-sector-size:storage=4096', guest('test_blk')]);
    t.is(r.status, 0, r.stderr);
    const dup = await tendrilAsync(['run', `--block:storage=${disk}`, `--block:storage=${disk}`, guest('test_blk')]);
    t.is(dup.status, 1);
    t.regex(dup.stderr, /given twice/);
  });
});

test('63 block devices at once (test_mft_maxdevices)', async (t) => {
  await withTempDir(async (dir) => {
    const opts = Array.from({ length: 63 }, (_, i) => `--block:storage${i}=${image(dir, `d${i}.img`, 4096)}`);
    const r = await tendrilAsync(['run', '--mem=2', ...opts, guest('test_mft_maxdevices')]);
    t.is(r.status, 0, r.stdout + r.stderr);
    t.regex(r.stdout, /SUCCESS/);
  });
});

test('a bad option does not touch the disk named before it', async (t) => {
  await withTempDir(async (dir) => {
    const disk = image(dir, 'disk.img', 4 << 20, 0x77);
    const before = sha(disk);
    for (const bad of ['--mem=2x', '--mem=1']) {
      const r = await tendrilAsync(['run', `--block:storage=${disk}`, bad, guest('test_blk')]);
      t.is(r.status, 1);
    }
    t.is(sha(disk), before);
  });
});
