// What /proc says about the stub create has just started: its start time
// (recorded with the pid, so that a reused pid is never taken for the guest),
// what it runs and what it blocks reading. The later commands read the same
// in C (native/oci/proc.c).

import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';

export interface ProcStat {
  /** R, S, D, T (stopped: paused), Z (zombie: exited, not yet reaped), X… */
  state: string;
  /** Clock ticks since boot (field 22): with the pid, a process's identity. */
  startTime: string;
}

export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces or ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0], startTime: rest[19] };
}

export function exePath(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/**
 * The fd the process is blocked reading from (read(2) is what the stub does
 * while it waits for start), null when it is not in read, undefined when
 * /proc/PID/syscall cannot be read (that needs ptrace access: root, or the
 * same user and a dumpable process).
 */
export function readingFd(pid: number): number | null | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/syscall`, 'latin1');
  } catch {
    return undefined;
  }
  const [nr, arg0] = text.trim().split(' ');
  return nr === '0' && arg0 !== undefined ? Number(arg0) : null;
}

/** Whether /proc/PID/fd/FD is the file with this device and inode. */
export function fdIsFile(pid: number, fd: number, file: { dev: number; ino: number }): boolean {
  try {
    const st = statSync(`/proc/${pid}/fd/${fd}`);
    return st.dev === file.dev && st.ino === file.ino;
  } catch {
    return false;
  }
}

/** The pids of PID's children (a jailed guest's waiter has two: the init of the guest's pid namespace, and the guest). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // A kernel without CONFIG_PROC_CHILDREN: each process's parent, by pid.
    const out: number[] = [];
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }
}

/** The fd of PID that is the file with this device and inode, if it has one. */
export function fdOfFile(pid: number, file: { dev: number; ino: number }): number | undefined {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  return fds.map(Number).find((fd) => fdIsFile(pid, fd, file));
}
