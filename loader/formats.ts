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
  /** Snapshot creation (monitor mode): the monitor stops the guest at the point PLAN_SECTION.SNAPSHOT names and dumps it (native/stub/snapshot_dump.c). */
  SNAPSHOT: 1 << 8,
  /** Record: the monitor answers the guest's calls for real and writes them to a recording (PLAN_SECTION_REC_RECORD). */
  RECORD: 1 << 12,
  /** Replay: the monitor answers the guest's calls from a recording (PLAN_SECTION_REC_REPLAY); no device is attached. */
  REPLAY: 1 << 13,
});

/**
 * Section types of a plan's extra part. Each capability owns a range, so
 * they can be added independently: restore (snapshots) 1–15, record and
 * replay 16–31, isolation 32–47. The stub refuses a type it does not know.
 */
export const PLAN_SECTION = constants('PLAN_SECTION', 'Plan section types (plan_section.type).', {
  RESTORE_FIRST: 1,
  /** restore_header + snapshot_cpu + its XSAVE area: the guest resumes from this state instead of its entry point (native/stub/restore.c). */
  RESTORE: 1,
  /** snapshot_request: where to stop the guest and where the dump goes (with PLAN_F.SNAPSHOT). */
  SNAPSHOT: 2,
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
  /** Snapshot creation: the guest reached the point, was dumped (snapshot_dump says how that went) and was killed. */
  SNAPSHOT: 1 << 8,
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
// Snapshots (supervisor/snapshot/, native/stub/snapshot_dump.c, restore.c).
// Creation: the monitor stops the guest at a yield, writes guest memory to
// the memory file (at file offset = guest address, pages of zeros left as
// holes) and, to the state fd, a snapshot_dump, a snapshot_cpu, the XSAVE
// area and the stored page runs. Restore: the plan carries a restore_header, the
// snapshot_cpu and the XSAVE area in a PLAN_SECTION.RESTORE section; the
// supervisor has checked them against this CPU (which the stub describes once
// with `tendril-stub --cpu`: a snapshot_cpu with no registers), the stub
// checks what would make XRSTOR fault and resumes the guest there.

export const SNAPSHOT = constants('SNAPSHOT', 'Snapshot dump and CPU state identity and limits.', {
  DUMP_MAGIC: 0x31444e53, // "SND1"
  CPU_MAGIC: 0x31434e53, // "SNC1"
  /** Largest XSAVE area a snapshot may hold (the kernel's user XSAVE size on this CPU, AMX included, is below it). */
  MAX_XSAVE: 16384,
  /** Components of the XSAVE layout table (snapshot_cpu.xsave_layout). */
  XSAVE_COMPONENTS: 64,
});

export const SNAPSHOT_CPU_FLAG = constants('SNAPSHOT_CPU_F', 'What a snapshot_cpu holds (snapshot_cpu.flags).', {
  /** The area is an XSAVE area in standard format (xcr0, xsave_layout apply); otherwise a 512-byte FXSAVE area. */
  XSAVE: 1 << 0,
});

/** Which step of a dump failed (snapshot_dump.error_step), for the message. */
export const SNAPSHOT_STEP = constants('SNAPSHOT_STEP', 'Steps of a snapshot dump (snapshot_dump.error_step).', {
  REGISTERS: 1,
  FPU: 2,
  OPEN_PROC: 3,
  PAGEMAP: 4,
  READ_MEMORY: 5,
  WRITE_MEMORY: 6,
  WRITE_STATE: 7,
  BUFFER: 8,
});

export const SnapshotRequest = defineStruct('snapshot_request', 'Snapshot creation: stop at the at-th yield whose deadline lies in the future; dump to mem_fd and state_fd (fds as in the plan header: a number, or -1 - index of a received fd).', {
  at: 'u32',
  reserved: 'u32',
  mem_fd: 'i32',
  state_fd: 'i32',
} as const);

export const SnapshotDump = defineStruct('snapshot_dump', 'The head of the state fd: how the dump went and where the guest was. A snapshot_cpu, xsave_size bytes of XSAVE area and nruns snapshot_run follow.', {
  magic: 'u32',
  /** 0, or the errno of the step that failed. */
  error: 'u32',
  error_step: 'u32',
  /** Qualifying yields seen (the point is the last). */
  yields: 'u32',
  /** Pages written to the memory file (pages of zeros are not). */
  pages: 'u64',
  nruns: 'u64',
  /** CLOCK_MONOTONIC at the point, and the deadline the guest's yield had set. */
  monotonic_ns: 'u64',
  deadline_ns: 'u64',
  /** The system call the guest was about to make (orig_rax at the stop). */
  orig_rax: 'u64',
  cs: 'u64',
  ss: 'u64',
  ds: 'u64',
  es: 'u64',
  fs: 'u64',
  gs: 'u64',
} as const);

export const SnapshotRun = defineStruct('snapshot_run', 'Consecutive stored pages of guest memory (at file offset = guest address).', {
  start: 'u64',
  pages: 'u64',
} as const);

export const SnapshotCpu = defineStruct('snapshot_cpu', 'Every register the guest can observe, and what the CPU that saved them offers; xsave_size bytes of XSAVE (or FXSAVE) area follow.', {
  magic: 'u32',
  flags: 'u32',
  xsave_size: 'u32',
  reserved: 'u32',
  rax: 'u64',
  rbx: 'u64',
  rcx: 'u64',
  rdx: 'u64',
  rsi: 'u64',
  rdi: 'u64',
  rbp: 'u64',
  rsp: 'u64',
  r8: 'u64',
  r9: 'u64',
  r10: 'u64',
  r11: 'u64',
  r12: 'u64',
  r13: 'u64',
  r14: 'u64',
  r15: 'u64',
  rip: 'u64',
  rflags: 'u64',
  fs_base: 'u64',
  gs_base: 'u64',
  /** XCR0 of the saving CPU: the state components the XSAVE area is laid out for. */
  xcr0: 'u64',
  /** Instruction-set feature words (cpuid 1 ecx/edx, 7.0 ebx/ecx/edx, 0x80000001 ecx/edx, 0xd.1 eax), masked to what user code can use. */
  cpuid_1_ecx: 'u32',
  cpuid_1_edx: 'u32',
  cpuid_7_ebx: 'u32',
  cpuid_7_ecx: 'u32',
  cpuid_7_edx: 'u32',
  cpuid_81_ecx: 'u32',
  cpuid_81_edx: 'u32',
  cpuid_d1_eax: 'u32',
  /** XSAVE components this CPU enables only on first use (XFD, cpuid 0xd.i ecx bit 2, e.g. AMX tile data). */
  xfd_components: 'u64',
  /** Per XSAVE state component i: u32 offset and u32 size in the standard-format area (cpuid 0xd.i), zero if not in xcr0. */
  xsave_layout: ['u8', 64 * 8],
} as const);

export const RestoreHeader = defineStruct('restore_header', 'The start of a PLAN_SECTION.RESTORE section: how to load the state on this CPU; a snapshot_cpu and its XSAVE area follow.', {
  /** The XRSTOR requested-feature bitmap, chosen by the supervisor for this CPU (a subset of the saved xcr0). */
  rfbm: 'u64',
  /** The deadline the guest's timer had (absolute CLOCK_MONOTONIC ns), armed again on the new timerfd; 0 leaves it disarmed. */
  timer_ns: 'u64',
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
  /**
   * ← one line: a frame of a type Node never sends came in. Either the peer is
   * not tendril, or the stream lost a byte and every frame after it would be
   * misread (launches never answered): the server restarts the zygote.
   */
  OUT_OF_STEP: 15,
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

// ---------------------------------------------------------------------------
// Record and replay (docs/record-replay.md). A recording is one file:
//   rec_file_header, then meta_len bytes of JSON (what was run, for people and
//   for `replay --info`), image_len bytes (the guest ELF), lowmem_len bytes
//   (boot info + manifest copy + command line, exactly as the guest got them),
//   padding to 8 — written by the supervisor (supervisor/record/);
//   then the event stream — rec_event records written by the stub's monitor
//   (native/stub/record.c), the first one a REC_EV_CPU record;
//   then one rec_trailer, written by the monitor when the guest has ended.
// The replayer (native/stub/replay.c) reads the stream back and answers the
// guest's calls from it.

export const REC = constants('REC', 'Recordings: identity, limits and the replay exit status.', {
  MAGIC: 0x5244_4e54, // "TNDR"
  TRAILER_MAGIC: 0x4544_4e54, // "TNDE"
  VERSION: 1,
  /** Largest data an input event (read, pread64, clock, epoll) may carry: what the replayer writes into guest memory in one call. */
  MAX_INPUT: 1 << 17,
  /** epoll_pwait answered by the monitor itself up to this many events; larger maxevents go to the kernel. */
  MAX_EPOLL_EVENTS: 128,
  /** Largest write the recorder performs for the guest from its own buffer; a larger one is made by the guest itself. */
  MAX_EMULATED_WRITE: 1 << 20,
  /** Bytes of each side's data a divergence report quotes. */
  QUOTE: 48,
  /** Exit status of `tendril replay` when the guest departed from its recording (docs/abi.md §13). */
  DIVERGED_STATUS: 125,
});

export const REC_EV = constants('REC_EV', 'Recording event kinds (rec_event.kind).', {
  /** First record of every stream, not counted as an event: the CPU the guest ran on (rec_cpu in data). */
  CPU: 1,
  /** A system call: nr, its arguments, the result; data = what it read (read, pread64, clock_gettime, epoll_pwait) or wrote. */
  SYSCALL: 2,
  /** rdtsc/rdtscp trapped and answered: result = the counter; args = rip, instruction length, TSC_AUX (rdtscp). */
  RDTSC: 3,
  RDTSCP: 4,
  /** cpuid faulted and answered: args = rip, eax, ecx in; data = eax, ebx, ecx, edx out (4 × u32). */
  CPUID: 5,
  /** A signal delivered to the guest: nr = signal; args = si_code, si_addr, rip; data = user_regs_struct at delivery. */
  SIGNAL: 6,
});

export const REC_EVF = constants('REC_EVF', 'Recording event flags (rec_event.flags).', {
  /** The guest made the call itself (the monitor only watched its entry and exit). */
  NATIVE: 1 << 0,
  /** SIGNAL: raised by the guest's own instruction (a fault); replay expects it, never sends it. */
  SYNC: 1 << 1,
  /** SIGNAL: its default action ends the process. */
  FATAL: 1 << 2,
  /** SYSCALL: the guest died in this call; result is meaningless. */
  KILLED: 1 << 4,
});

export const RecEvent = defineStruct('rec_event', 'One recorded event; nargs × u64 arguments follow, then data_len bytes padded to 8.', {
  kind: 'u16',
  nargs: 'u16',
  /** The syscall number, the signal, or 0. */
  nr: 'u32',
  data_len: 'u32',
  flags: 'u32',
  result: 'i64',
} as const);

export const REC_CPUID = constants('REC_CPUID', 'How cpuid was handled while recording (rec_cpu.mode).', {
  /** The CPU cannot fault cpuid: the guest ran it natively, so only an identical CPU replays the recording. */
  NATIVE: 1,
  /** cpuid faulted (ARCH_SET_CPUID) and every answer is in the recording (rdrand, rdseed, rdpid and TSX hidden). */
  FAULTED: 2,
});

export const RecCpu = defineStruct('rec_cpu', 'The CPU a recording was made on: identity and feature words, as cpuid and xgetbv report them.', {
  mode: 'u32',
  /** cpuid leaf 0: the highest basic leaf. */
  max_leaf: 'u32',
  vendor: ['u8', 12],
  /** Leaf 1 eax: family, model, stepping. */
  signature: 'u32',
  leaf1_ecx: 'u32',
  leaf1_edx: 'u32',
  leaf7_ebx: 'u32',
  leaf7_ecx: 'u32',
  leaf7_edx: 'u32',
  ext1_ecx: 'u32',
  ext1_edx: 'u32',
  reserved: 'u32',
  /** XCR0: the register state the OS enables (what xsave saves). */
  xcr0: 'u64',
  brand: ['u8', 48],
} as const);

export const REC_END = constants('REC_END', 'How a recorded guest ended (rec_trailer.end).', {
  EXITED: 1,
  SIGNALED: 2,
  /** The stub failed before the guest's first instruction. */
  NOT_STARTED: 3,
});

export const REC_ENDF = constants('REC_ENDF', 'rec_trailer.flags.', {
  CORE: 1 << 0,
  /** fault_* describe the fault that killed the guest. */
  FAULT: 1 << 1,
  /** regs holds the registers at the end. */
  REGS: 1 << 2,
  /** The guest died inside its last system call (regs.orig_rax says which). */
  IN_SYSCALL: 1 << 3,
});

export const RecTrailer = defineStruct('rec_trailer', 'The end of a recording, written by the monitor once the guest has ended.', {
  magic: 'u32',
  version: 'u32',
  /** Events in the stream (the CPU record is not one). */
  events: 'u64',
  syscalls: 'u64',
  /** rdtsc and rdtscp. */
  tsc_reads: 'u64',
  cpuids: 'u64',
  signals: 'u64',
  /** Bytes of the event stream (from rec_file_header.header_len to this trailer). */
  stream_len: 'u64',
  /** CRC-32 (IEEE, as zlib) of the event stream. */
  stream_crc: 'u32',
  end: 'u32',
  /** Exit code, or the signal. */
  status: 'i32',
  flags: 'u32',
  fault_addr: 'u64',
  fault_code: 'i32',
  fault_signal: 'i32',
  /** Wall time from the first instruction to the end, ns. */
  duration_ns: 'u64',
  /** struct user_regs_struct at the end (27 × u64). */
  regs: ['u8', 216],
} as const);

export const RecFileHeader = defineStruct('rec_file_header', 'The start of a recording file (written and read by the supervisor).', {
  magic: 'u32',
  version: 'u32',
  /** Bytes before the event stream: this header, meta, image, low memory, padding. */
  header_len: 'u32',
  /** CRC-32 of the first header_len bytes, computed with this field zero. */
  header_crc: 'u32',
  meta_len: 'u32',
  image_len: 'u32',
  lowmem_len: 'u32',
  /** Plan flags of the guest half (X_EXEC_HEAP). */
  plan_flags: 'u32',
  mem_size: 'u64',
  /** The guest's registers at its first instruction (abi.md §3): every other register is zero. */
  entry_rip: 'u64',
  entry_rsp: 'u64',
  entry_rdi: 'u64',
} as const);

/** Plan section types of the record/replay range (PLAN_SECTION.RECORD_FIRST…). */
export const PLAN_SECTION_REC = constants('PLAN_SECTION_REC', 'Record/replay plan section types.', {
  RECORD: PLAN_SECTION.RECORD_FIRST,
  REPLAY: PLAN_SECTION.RECORD_FIRST + 1,
});

export const REC_PLAN_FLAG = constants('REC_PLAN_F', 'plan_record.flags and plan_replay.flags.', {
  /** Ask for cpuid faulting (record: if the CPU can; replay: required, the recording was made with it). */
  FAULT_CPUID: 1 << 0,
  /** Replay: do not reproduce the console output on stdout. */
  QUIET: 1 << 1,
  /** Replay: at event `until`, leave the guest stopped and detached for a debugger. */
  GDB: 1 << 2,
  /** Replay: at event `until`, leave a core of the guest as it is (the process is dumpable, RLIMIT_CORE is set). */
  CORE_AT_UNTIL: 1 << 3,
});

export const PlanRecord = defineStruct('plan_record', 'PLAN_SECTION_REC_RECORD: record this run.', {
  /** The recording, open for writing and positioned at the start of the event stream (an fd of the stub, or received). */
  file_src: 'i32',
  flags: 'u32',
} as const);

export const PlanReplay = defineStruct('plan_replay', 'PLAN_SECTION_REC_REPLAY: replay a recording instead of running with devices.', {
  /** The recording, open for reading (read with pread: the offset is not used). */
  file_src: 'i32',
  flags: 'u32',
  stream_offset: 'u64',
  stream_len: 'u64',
  /** 1-based event to stop before; 0: none. */
  until: 'u64',
} as const);

export const REPLAY_OUT = constants('REPLAY_OUT', 'replay_status.outcome.', {
  /** Every event matched; the guest ended as recorded. */
  FAITHFUL: 1,
  DIVERGED: 2,
  /** --until reached: the guest is stopped before that event (detached for a debugger with GDB). */
  STOPPED: 3,
  /** This CPU is not the one the recording needs. */
  CPU_MISMATCH: 4,
  /** The event stream does not parse (it changed since it was checked). */
  BAD_RECORDING: 5,
  /** A signal from outside (not in the recording) ended the replay. */
  INTERRUPTED: 6,
});

export const REPLAY_WHY = constants('REPLAY_WHY', 'replay_status.why: what differs.', {
  KIND: 1,
  SYSCALL: 2,
  ARG: 3,
  DATA: 4,
  END: 5,
  NO_MORE: 6,
  MEMORY: 7,
  SIGNAL: 8,
  CPUID_NEEDED: 9,
});

export const REPLAY_NOTE = constants('REPLAY_NOTE', 'replay_status.detail of a FAITHFUL verdict: what was only approximately reproduced.', {
  /**
   * A signal from outside that arrived while the guest ran its own code was sent at the recorded
   * instruction, but the moment with the recorded registers was not found within BP_BUDGET hits of
   * it (no branch counter: docs/record-replay.md, "What is not captured").
   */
  SIGNAL_MOMENT: 1 << 0,
  BP_BUDGET: 20000,
});

export const ReplayStatus = defineStruct('replay_status', "The replayer's verdict (monitor → supervisor, before the monitor_report).", {
  magic: 'u32',
  outcome: 'u32',
  /** 1-based event index the verdict is about. */
  event: 'u64',
  why: 'u32',
  /** ARG: which argument; DATA: the first differing byte. */
  detail: 'u32',
  /** What the guest did: a rec_event header, args and a quote of its data. */
  guest_kind: 'u16',
  guest_nargs: 'u16',
  guest_nr: 'u32',
  guest_data_len: 'u32',
  guest_flags: 'u32',
  guest_result: 'i64',
  guest_args: ['u8', 48],
  guest_quote: ['u8', 48],
  /** What the recording has at that event. */
  rec_kind: 'u16',
  rec_nargs: 'u16',
  rec_nr: 'u32',
  rec_data_len: 'u32',
  rec_flags: 'u32',
  rec_result: 'i64',
  rec_args: ['u8', 48],
  rec_quote: ['u8', 48],
  /** CPU_MISMATCH: this CPU (the recording's is in its stream). */
  cpu: ['u8', 128],
  guest_pid: 'i32',
  /** Where in the data both quotes start (near the first difference for DATA). */
  quote_offset: 'u32',
} as const);

export const REPLAY_MAGIC = constants('REPLAY', 'Replayer messages.', { STATUS_MAGIC: 0x3150_4c52 }); // "RLP1"

/** Everything the generator emits, in order. */
export const C_EXPORTS: { constants: ConstGroup[]; structs: StructDef[] } = {
  constants: [GUEST_FD.group, PLAN.group, PLAN_FLAG.group, PLAN_SECTION.group, ISOLATE.group, ISOLATE_FLAG.group, REPORT.group, REPORT_FLAG.group,
    SNAPSHOT.group, SNAPSHOT_CPU_FLAG.group, SNAPSHOT_STEP.group, ZYGOTE.group, ZYGOTE_MSG.group, ZYGOTE_LAUNCH_FLAG.group,
    REC.group, REC_EV.group, REC_EVF.group, REC_CPUID.group, REC_END.group, REC_ENDF.group, PLAN_SECTION_REC.group, REC_PLAN_FLAG.group,
    REPLAY_OUT.group, REPLAY_WHY.group, REPLAY_NOTE.group, REPLAY_MAGIC.group],
  structs: [PlanHeader, PlanRegion, PlanFdMove, PlanPoll, PlanSection, PlanIsolate, MonitorHello, MonitorReport, SnapshotRequest, SnapshotDump, SnapshotRun,
    SnapshotCpu, RestoreHeader, ZygoteFrame, ZygoteLaunch, ZygoteStarted, ZygoteExit, ZygoteHello,
    RecEvent, RecCpu, RecTrailer, RecFileHeader, PlanRecord, PlanReplay, ReplayStatus],
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
