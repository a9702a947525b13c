// Every binary format that TypeScript and C share, defined once, here. The
// build (scripts/gen-formats.js) turns these definitions into the C header
// native/build/include/tendril_formats.h — structs, constants and a
// _Static_assert on every size and offset — so the stub, the zygote and the
// supervisor can never disagree about a layout: change a field here and
// both sides follow.
//
// Layouts are explicit: a field must sit at its natural alignment with no
// implicit padding (add a `reserved` field instead), so the C compiler's
// layout and the one computed here are the same by construction, and the
// generated asserts prove it.

export type Scalar = 'u8' | 'u16' | 'u32' | 'i32' | 'u64' | 'i64';
/** A scalar, or a fixed-size byte array ['u8', N]. */
export type FieldType = Scalar | readonly ['u8', number];
export type Fields = Readonly<Record<string, FieldType>>;

type ValueOf<T extends FieldType> = T extends 'u64' | 'i64' ? bigint : T extends Scalar ? number : Buffer;
export type Values<F extends Fields> = { [K in keyof F]: ValueOf<F[K]> };

const SIZE: Record<Scalar, number> = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8, i64: 8 };
const CTYPE: Record<Scalar, string> = { u8: 'uint8_t', u16: 'uint16_t', u32: 'uint32_t', i32: 'int32_t', u64: 'uint64_t', i64: 'int64_t' };

export interface StructDef<F extends Fields = Fields> {
  cname: string;
  doc: string;
  fields: F;
  offsets: { [K in keyof F]: number };
  size: number;
}

function fieldSize(t: FieldType): number {
  return typeof t === 'string' ? SIZE[t] : t[1];
}

function fieldAlign(t: FieldType): number {
  return typeof t === 'string' ? SIZE[t] : 1;
}

export function defineStruct<F extends Fields>(cname: string, doc: string, fields: F): StructDef<F> {
  let off = 0;
  let align = 1;
  const offsets = {} as { [K in keyof F]: number };
  for (const [name, t] of Object.entries(fields)) {
    const a = fieldAlign(t);
    if (off % a !== 0) throw new Error(`${cname}.${name}: at offset ${off}, not ${a}-aligned; add a reserved field before it`);
    (offsets as Record<string, number>)[name] = off;
    off += fieldSize(t);
    align = Math.max(align, a);
  }
  if (off % align !== 0) throw new Error(`${cname}: size ${off} is not a multiple of its alignment ${align}; add a reserved field at the end`);
  return { cname, doc, fields, offsets, size: off };
}

export function encodeStruct<F extends Fields>(def: StructDef<F>, v: Partial<Values<F>>, buf = Buffer.alloc(def.size), at = 0): Buffer {
  for (const [name, t] of Object.entries(def.fields)) {
    const o = at + def.offsets[name];
    const x = (v as Record<string, unknown>)[name];
    if (x === undefined) continue; // zero: buffers start zeroed
    switch (t) {
      case 'u8': buf.writeUInt8(x as number, o); break;
      case 'u16': buf.writeUInt16LE(x as number, o); break;
      case 'u32': buf.writeUInt32LE(x as number, o); break;
      case 'i32': buf.writeInt32LE(x as number, o); break;
      case 'u64': buf.writeBigUInt64LE(x as bigint, o); break;
      case 'i64': buf.writeBigInt64LE(x as bigint, o); break;
      default: {
        const b = x as Buffer;
        if (b.length > t[1]) throw new Error(`${def.cname}.${name}: ${b.length} bytes do not fit in ${t[1]}`);
        b.copy(buf, o);
      }
    }
  }
  return buf;
}

/** Decodes one struct; throws RangeError if the buffer is too short. */
export function decodeStruct<F extends Fields>(def: StructDef<F>, buf: Buffer, at = 0): Values<F> {
  if (buf.length < at + def.size) throw new RangeError(`${def.cname}: ${buf.length - at} bytes, need ${def.size}`);
  const out: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(def.fields)) {
    const o = at + def.offsets[name];
    switch (t) {
      case 'u8': out[name] = buf.readUInt8(o); break;
      case 'u16': out[name] = buf.readUInt16LE(o); break;
      case 'u32': out[name] = buf.readUInt32LE(o); break;
      case 'i32': out[name] = buf.readInt32LE(o); break;
      case 'u64': out[name] = buf.readBigUInt64LE(o); break;
      case 'i64': out[name] = buf.readBigInt64LE(o); break;
      default: out[name] = Buffer.from(buf.subarray(o, o + t[1]));
    }
  }
  return out as Values<F>;
}

/** A group of C constants: PREFIX_NAME. */
export interface ConstGroup { prefix: string; doc: string; values: Readonly<Record<string, number>> }

function constants<V extends Record<string, number>>(prefix: string, doc: string, values: V): V & { group: ConstGroup } {
  return Object.assign({ ...values }, { group: { prefix, doc, values } });
}

// ---------------------------------------------------------------------------
// The guest's fd layout. The same in every hand-over (exec, spawn, pool), so
// a filter compiled once fits every launch of an image, and a snapshot or a
// recording made in one mode restores or replays in another: the guest keeps
// its fd numbers in its own memory (boot info, manifest copy).

export const GUEST_FD = constants('GUEST_FD', "The guest's fds: stdio, then the tender's epoll set and timerfd, then the devices in attach order.", {
  EPOLL: 3,
  TIMER: 4,
  FIRST_DEVICE: 5,
});

// ---------------------------------------------------------------------------
// The launch plan (supervisor → stub). Read front to back by the stub:
//   header
//   nregions × plan_region      memory mapped from the memory file (image_src)
//   nmoves   × plan_fd_move     fds put in place for the guest
//   npoll    × plan_poll        extra members of the guest's epoll set (taps)
//   extra_size bytes            typed sections: plan_section + len bytes, padded to 8,
//                               each type at most once (PLAN_SECTION: restore, record, isolate…)
//   lowmem_size bytes, padded to 8: boot info + manifest copy + command line at 0x11000
//   bpf_insns × 8 bytes         the seccomp program (struct sock_filter)

export const PLAN = constants('PLAN', 'Launch plan identity and limits.', {
  MAGIC: 0x33504454, // "TDP3"
  VERSION: 3,
  MAX_REGIONS: 64,
  MAX_MOVES: 66,
  MAX_POLL: 64,
  MAX_RECV_FDS: 72,
  MAX_BPF_INSNS: 4096,
  /** Bytes of typed sections, after the poll table (plan_section headers included). */
  MAX_EXTRA: 1 << 20,
  /** A move source below zero is the index of an fd received with the plan: -1 - index. */
  RECEIVED_BASE: -1,
});

export const PLAN_FLAG = constants('PLAN_F', 'Launch plan flags (plan_header.flags).', {
  /** --x-exec-heap: guest memory mapped RWX instead of RW. */
  X_EXEC_HEAP: 1 << 0,
  /** Leave the process dumpable (core dumps asked for); the default is not dumpable. */
  DUMPABLE: 1 << 1,
  /** --gdb: wait, with the guest loaded, until a debugger attaches. */
  STOP_AT_ENTRY: 1 << 2,
  /** Supervised: the stub forks a ptrace monitor that reports how the guest ended (monitor.c). */
  MONITOR: 1 << 3,
  /** OCI create/start: the loaded guest runs only when a byte arrives on start_fd. */
  WAIT_START: 1 << 4,
  /** Monitor mode: send a pidfd of the guest with the monitor_hello (report_fd is a unix socket). */
  SEND_PIDFD: 1 << 5,
  /** --isolate: the guest runs jailed as a child of the stub (native/stub/isolate.c); the plan carries ISOLATE sections. */
  ISOLATE: 1 << 16,
});

/**
 * Section types of a plan's extra part. Each capability owns a range, so
 * they can be added independently: restore (snapshots) 1–15, record and
 * replay 16–31, isolation 32–47. The stub refuses a type it does not know.
 */
export const PLAN_SECTION = constants('PLAN_SECTION', 'Plan section types (plan_section.type).', {
  RESTORE_FIRST: 1,
  RECORD_FIRST: 16,
  ISOLATE_FIRST: 32,
  LIMIT: 48,
});

export const PlanSection = defineStruct('plan_section', 'A typed section of the plan\'s extra part; len bytes follow, then padding to 8.', {
  type: 'u32',
  len: 'u32',
} as const);

export const PlanHeader = defineStruct('plan_header', 'The fixed start of a launch plan.', {
  magic: 'u32',
  version: 'u32',
  flags: 'u32',
  nregions: 'u32',
  mem_size: 'u64',
  entry: 'u64',
  nmoves: 'u32',
  npoll: 'u32',
  lowmem_size: 'u32',
  bpf_insns: 'u32',
  /** The memory file the regions map from: an fd number, or -1 - index of a received fd; ignored without regions. */
  image_src: 'i32',
  /** Monitor mode: where the monitor writes its report (an fd of the process that started the stub). */
  report_fd: 'i32',
  /** WAIT_START: the fd to read the start byte from. */
  start_fd: 'i32',
  extra_size: 'u32',
} as const);

export const PlanRegion = defineStruct('plan_region', 'Guest memory mapped MAP_PRIVATE|MAP_FIXED from the memory file.', {
  vaddr: 'u64',
  length: 'u64',
  file_offset: 'u64',
  /** PROT_READ 1 | PROT_WRITE 2 | PROT_EXEC 4. */
  prot: 'u32',
  reserved: 'u32',
} as const);

export const PlanFdMove = defineStruct('plan_fd_move', 'An fd the guest keeps: where it is now (src) and the number it gets (dst).', {
  src: 'i32',
  dst: 'i32',
} as const);

export const PlanPoll = defineStruct('plan_poll', "A member of the guest's epoll set besides the timerfd: a tap, tagged with its handle.", {
  fd: 'i32',
  reserved: 'u32',
  data: 'u64',
} as const);

// ---------------------------------------------------------------------------
// Isolation (--isolate, supervisor/isolate/): what the jailer in the stub
// (native/stub/isolate.c) sets up for the guest before its filter. Sections
// in PLAN_SECTION's isolation range:
//   ISOLATE.SECTION_JAIL     one plan_isolate
//   ISOLATE.SECTION_CGROUPS  the guest's cgroup directories (made and limited by
//                            the supervisor), each a NUL-terminated absolute path:
//                            the guest's parent joins each before forking the guest,
//                            which is so born in them (no migration, which on a busy
//                            host waits for an RCU grace period), and removes each
//                            when it has ended (unless KEEP_CGROUPS)
//   ISOLATE.SECTION_CGROUP_LIMITS  FILE\0VALUE\0 pairs the parent writes into each of
//                            the guest's cgroup directories that has FILE, before the
//                            guest exists: the limits of a prepared stub's own cgroups

export const ISOLATE = constants('ISOLATE', 'Isolation: plan section types (in PLAN_SECTION_ISOLATE_FIRST..) and limits.', {
  SECTION_JAIL: 32,
  SECTION_CGROUPS: 33,
  SECTION_CGROUP_LIMITS: 34,
  /** One directory per cgroup hierarchy (v2: one; v1: memory, pids, cpu). */
  MAX_CGROUPS: 4,
  /** Bytes of one cgroup directory path, NUL included. */
  MAX_PATH: 1024,
  /** The namespaces made by the init (and so ahead of time in a prepared pool stub): ISOLATE_F_ NEWPID | EMPTY_ROOT | NEWNET | NEWIPC | NEWUTS | NEWCGROUP. */
  NAMESPACE_FLAGS: 0x3f,
});

export const ISOLATE_FLAG = constants('ISOLATE_F', 'The layers plan_isolate.flags asks for (each one the host can provide).', {
  /** A pid namespace: a tiny init is pid 1, the guest pid 2. */
  NEWPID: 1 << 0,
  /** A mount namespace whose root is an empty, read-only tmpfs; the old root is unmounted. */
  EMPTY_ROOT: 1 << 1,
  NEWNET: 1 << 2,
  NEWIPC: 1 << 3,
  NEWUTS: 1 << 4,
  /** A cgroup namespace, rooted at tendril's own cgroup (the init's): the guest sees only its own cgroup below that root. */
  NEWCGROUP: 1 << 5,
  /** uid/gid, no supplementary groups, every capability dropped (bounding set included), no processes (RLIMIT_NPROC 0). */
  CREDS: 1 << 6,
  /** A Landlock domain handling the landlock_* rights with no rule: every filesystem (and TCP, and scoped) access denied. */
  LANDLOCK: 1 << 7,
  /** The guest's cgroups are the supervisor's to remove (serve, after the launch); otherwise its parent in the stub removes them. */
  KEEP_CGROUPS: 1 << 8,
});

/**
 * A pool stub can make its jail while it waits for its plan (`tendril
 * serve --isolate`): started as `tendril-stub PLAN-FD JAIL [CGROUP-PARENT...]`,
 * JAIL being the plan_isolate it will be given, as 2 * sizeof hex digits,
 * it makes the init and its namespaces, and its own cgroup
 * CGROUP-PARENT/tendril-PID-pool in each parent, which it joins. Its plan
 * must then ask for the same namespaces, carry no cgroup list (the limits
 * come as SECTION_CGROUP_LIMITS) and leave the cgroups to the supervisor.
 */
if (ISOLATE.NAMESPACE_FLAGS !== (ISOLATE_FLAG.NEWPID | ISOLATE_FLAG.EMPTY_ROOT | ISOLATE_FLAG.NEWNET | ISOLATE_FLAG.NEWIPC | ISOLATE_FLAG.NEWUTS | ISOLATE_FLAG.NEWCGROUP)) {
  throw new Error('ISOLATE.NAMESPACE_FLAGS must be the init\'s namespace flags');
}

export const PlanIsolate = defineStruct('plan_isolate', 'The jail of an isolated guest (section ISOLATE_SECTION_JAIL).', {
  flags: 'u32',
  uid: 'u32',
  gid: 'u32',
  reserved: 'u32',
  /** struct landlock_ruleset_attr: the rights handled (and so denied) for this kernel's Landlock ABI. */
  landlock_fs: 'u64',
  landlock_net: 'u64',
  landlock_scoped: 'u64',
} as const);

// ---------------------------------------------------------------------------
// The monitor's report (stub in monitor mode → whoever started it), written
// once when the guest has ended, to report_fd.

export const REPORT = constants('REPORT', 'Monitor messages: a hello when the guest process exists, a report when it has ended.', {
  HELLO_MAGIC: 0x314c484d, // "MHL1"
  MAGIC: 0x31504552, // "REP1"
});

export const MonitorHello = defineStruct('monitor_hello', 'The monitor has forked the guest (with SEND_PIDFD, a pidfd of it rides along).', {
  magic: 'u32',
  guest_pid: 'i32',
} as const);

export const REPORT_FLAG = constants('REPORT_F', 'What a monitor report holds (monitor_report.flags).', {
  /** The guest ran (the stub reached the jump); without it the stub failed before the guest existed. */
  STARTED: 1 << 0,
  /** Ended by a signal (status is the signal number); otherwise status is the exit code. */
  SIGNALED: 1 << 1,
  CORE: 1 << 2,
  /** regs_* hold the guest's registers at its end. */
  REGS: 1 << 3,
  /** fault_* hold the siginfo of the fault that killed it. */
  FAULT: 1 << 4,
  /** Isolated: the OOM killer of the guest's own memory cgroup ended it (its limit, not the host's memory). */
  OOM: 1 << 5,
});

export const MonitorReport = defineStruct('monitor_report', 'How a guest ended, as its monitor saw it.', {
  magic: 'u32',
  flags: 'u32',
  guest_pid: 'i32',
  status: 'i32',
  /** For a seccomp kill: the forbidden call (orig_rax, rolled back by the kernel). */
  regs_syscall: 'i64',
  regs_ip: 'u64',
  regs_sp: 'u64',
  fault_addr: 'u64',
  fault_signal: 'i32',
  fault_code: 'i32',
  utime_us: 'u64',
  stime_us: 'u64',
  maxrss_kb: 'u64',
} as const);

// ---------------------------------------------------------------------------
// The zygote protocol (supervisor ⇄ tendril-zygote over a unix stream
// socket): frames of a header and `len` payload bytes.

export const ZYGOTE = constants('ZYGOTE', 'The zygote control protocol.', {
  CONTROL_FD: 3,
  /** fds of a pool stub, set up by the zygote: its plan socket and its monitor report socket. */
  STUB_PLAN_FD: 3,
  STUB_REPORT_FD: 4,
  /** fds one LAUNCH may carry: the memory file and up to 63 devices, with room to spare. */
  MAX_FDS: 72,
  /** Plans carry no image bytes (those are in the memory file), so a plan is small; larger frames are refused, not trusted. */
  MAX_PAYLOAD: 2 << 20,
  MAX_POOL: 64,
  /** Bytes of a stub's own error message (its stderr) kept for the EXIT frame. */
  MAX_STUB_ERROR: 1024,
  /** Console bytes per OUTPUT frame. */
  OUTPUT_CHUNK: 65536,
  /** Console bytes a HOLD_OUTPUT launch keeps back for its EXIT frame, at most (beyond, they go as OUTPUT). */
  MAX_HELD_OUTPUT: 65536,
  /** Words the zygote adds to each stub's command line (serve --isolate: the jail and its cgroup parents). */
  MAX_STUB_ARGS: 5,
});

export const ZYGOTE_LAUNCH_FLAG = constants('ZLAUNCH_F', 'How a launch reports (zygote_launch.flags).', {
  /** No STARTED frame: the guest's pid comes with the EXIT (a caller waiting for the end needs nothing sooner). */
  QUIET_START: 1 << 0,
  /** Console output held back and sent with the EXIT, in one frame, until a STREAM frame asks for it as it comes. */
  HOLD_OUTPUT: 1 << 1,
});

export const ZYGOTE_MSG = constants('ZMSG', 'Zygote frame types.', {
  /** → zygote_launch, then the plan bytes; the guest's fds (memory file, devices) ride on the same sendmsg, zygote_frame.nfds of them. */
  LAUNCH: 1,
  /** → u32 signal, for the instance's guest (through its pidfd once known). */
  KILL: 2,
  /** → stop reading the instance's console (its consumer is slow): the guest blocks on its next write. */
  PAUSE: 3,
  /** → read the instance's console again. */
  RESUME: 4,
  /** → a HOLD_OUTPUT instance has a reader now: send what is held, then the console as it comes. */
  STREAM: 5,
  /** ← zygote_started: the guest exists. */
  STARTED: 10,
  /** ← console bytes (the guest's stdout), in order, before its EXIT. */
  OUTPUT: 11,
  /** ← zygote_exit, then stderr_len bytes of the stub's own error message, output_len bytes of held console, then the monitor's hello and report if it had a monitor. */
  EXIT: 12,
  /** ← one line: why the launch could not be started (nothing ran). */
  FAILED: 13,
  /** ← once at start: zygote_hello. */
  HELLO: 14,
});

export const ZygoteFrame = defineStruct('zygote_frame', 'Every zygote frame starts with this; len payload bytes follow.', {
  type: 'u32',
  id: 'u32',
  len: 'u32',
  /** LAUNCH: how many fds came with this frame's sendmsg (SCM_RIGHTS). */
  nfds: 'u32',
} as const);

export const ZygoteStarted = defineStruct('zygote_started', 'An instance is running: the guest pid (the stub pid too, which is the monitor when there is one).', {
  guest_pid: 'i32',
  stub_pid: 'i32',
} as const);

export const ZygoteLaunch = defineStruct('zygote_launch', 'The start of a LAUNCH payload; the plan follows.', {
  flags: 'u32',
  reserved: 'u32',
} as const);

export const ZygoteExit = defineStruct('zygote_exit', "An instance has ended: the stub's wait status, and what follows.", {
  wait_status: 'i32',
  stderr_len: 'u32',
  guest_pid: 'i32',
  output_len: 'u32',
  /** From the plan handed to the stub to the stub's end, measured by the zygote. */
  run_us: 'u64',
  /** The stub's own pid (serve --isolate: its cgroups are named for it, and removed once it has ended). */
  stub_pid: 'i32',
  reserved: 'u32',
} as const);

export const ZygoteHello = defineStruct('zygote_hello', 'The zygote is up: its limits.', {
  pid: 'i32',
  /** RLIMIT_NOFILE the zygote runs with (after raising its soft limit to the hard one). */
  nofile: 'u32',
} as const);

/** Everything the generator emits, in order. */
export const C_EXPORTS: { constants: ConstGroup[]; structs: StructDef[] } = {
  constants: [GUEST_FD.group, PLAN.group, PLAN_FLAG.group, PLAN_SECTION.group, ISOLATE.group, ISOLATE_FLAG.group, REPORT.group, REPORT_FLAG.group,
    ZYGOTE.group, ZYGOTE_MSG.group, ZYGOTE_LAUNCH_FLAG.group],
  structs: [PlanHeader, PlanRegion, PlanFdMove, PlanPoll, PlanSection, PlanIsolate, MonitorHello, MonitorReport, ZygoteFrame, ZygoteLaunch,
    ZygoteStarted, ZygoteExit, ZygoteHello],
};

/** Small values stay plain ints (no signedness warnings when compared with an fd); large ones are unsigned. */
function cLiteral(v: number): string {
  if (!Number.isInteger(v)) throw new Error(`constant ${v} is not an integer`);
  if (v < 0 || v < 4096) return String(v);
  return v > 0x7fffffff ? `0x${v.toString(16)}u` : `0x${v.toString(16)}`;
}

/** The C header for C_EXPORTS (scripts/gen-formats.js writes it into native/build/include). */
export function cHeader(): string {
  const out: string[] = [
    '/* Generated from loader/formats.ts by scripts/gen-formats.js. Do not edit: change the TypeScript. */',
    '#ifndef TENDRIL_FORMATS_H',
    '#define TENDRIL_FORMATS_H',
    '#include <stdint.h>',
    '',
  ];
  for (const g of C_EXPORTS.constants) {
    out.push(`/* ${g.doc} */`);
    for (const [k, v] of Object.entries(g.values)) out.push(`#define ${g.prefix}_${k} (${cLiteral(v)})`);
    out.push('');
  }
  for (const s of C_EXPORTS.structs) {
    out.push(`/* ${s.doc} */`, `struct ${s.cname} {`);
    for (const [name, t] of Object.entries(s.fields)) {
      out.push(typeof t === 'string' ? `    ${CTYPE[t]} ${name};` : `    uint8_t ${name}[${t[1]}];`);
    }
    out.push('};', `_Static_assert(sizeof(struct ${s.cname}) == ${s.size}, "struct ${s.cname}: size");`);
    for (const [name, off] of Object.entries(s.offsets)) {
      out.push(`_Static_assert(__builtin_offsetof(struct ${s.cname}, ${name}) == ${off}, "struct ${s.cname}: ${name}");`);
    }
    out.push('');
  }
  out.push('#endif', '');
  return out.join('\n');
}
