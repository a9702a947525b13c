// `tendril replay [--gdb] [--until=EVENT] [--dumpcore=DIR] [--quiet] FILE`
// and `tendril replay --info [--json] FILE` (docs/record-replay.md).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { REC, REC_END, REC_PLAN_FLAG, REPLAY_NOTE, REPLAY_OUT } from '../../loader/formats.js';
import { openRecording, RecordingError, signalName } from '../../loader/recording.js';
import { UsageError } from '../errors.js';
import { prepareCoreDumps } from '../launch.js';

const USAGE = `usage: tendril replay [--gdb] [--until=EVENT] [--dumpcore=DIR] [--quiet] FILE
       tendril replay --info [--json] FILE
Re-run the execution recorded by \`tendril run --record=FILE\`, exactly, with no
device attached: every call the guest makes is answered from the recording and
checked against it; the console output is reproduced on stdout; the exit status
(or the death signal, at the same instruction) is the recorded one.

  --until=EVENT     stop the guest before event EVENT (1 = the first; see --info)
  --gdb             with --until, leave the guest stopped there for gdb to attach
                    (without --until: before the last event)
  --dumpcore=DIR    a guest that dies by a signal leaves DIR/core (and the image,
                    for gdb); with --until, a core of the guest before that event
  --quiet           do not reproduce the console output
  --info            describe the recording: guest, arguments, devices, CPU,
                    events by kind, duration, outcome (--json: as JSON)

Exit status: the guest's, as recorded; ${REC.DIVERGED_STATUS} if the guest departed from
its recording (one line says where and how); 1 if the file cannot be replayed.`;

interface ReplayArgs {
  file: string;
  gdb: boolean;
  until: number;
  dumpcore?: string;
  quiet: boolean;
  info: boolean;
  json: boolean;
}

function parseArgs(argv: string[]): ReplayArgs | 'help' {
  const a: ReplayArgs = { file: '', gdb: false, until: 0, quiet: false, info: false, json: false };
  const files: string[] = [];
  const bad = (word: string, why: string, hint?: string) => new UsageError(`replay: \`${word}': ${why}`, hint ?? 'see `tendril replay --help`');
  for (let i = 0; i < argv.length; i++) {
    const w = argv[i];
    if (w === '--') {
      files.push(...argv.slice(i + 1));
      break;
    }
    if (w === '--help' || w === '-h') return 'help';
    else if (w === '--gdb') a.gdb = true;
    else if (w === '--quiet') a.quiet = true;
    else if (w === '--info') a.info = true;
    else if (w === '--json') a.json = true;
    else if (w.startsWith('--until=')) {
      const v = w.slice(8);
      if (!/^[1-9][0-9]{0,15}$/.test(v)) throw bad(w, 'EVENT must be an event number, 1 or more', '`tendril replay --info FILE` counts the events');
      a.until = Number(v);
    } else if (w.startsWith('--dumpcore=')) {
      a.dumpcore = w.slice(11);
      if (!a.dumpcore) throw bad(w, 'missing directory for the core file');
    } else if (w.startsWith('-')) {
      throw bad(w, 'unknown option');
    } else {
      files.push(w);
    }
  }
  if (files.length !== 1) throw new UsageError(files.length ? 'replay: expected one FILE' : 'replay: missing FILE (a recording made by tendril run --record=FILE)', 'see `tendril replay --help`');
  if (a.json && !a.info) throw bad('--json', 'goes with --info');
  if (a.info && (a.gdb || a.until || a.dumpcore || a.quiet)) throw bad('--info', 'only describes the recording; it takes no replay option');
  a.file = files[0];
  return a;
}

export async function replayVerb(argv: string[]): Promise<number> {
  const a = parseArgs(argv);
  if (a === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const rec = openRecording(resolve(a.file));
  if (a.info) {
    const { infoText, recordingInfo } = await import('../record/info.js');
    process.stdout.write(a.json ? `${JSON.stringify(recordingInfo(rec), null, 2)}\n` : `${infoText(rec)}\n`);
    return 0;
  }
  if (rec.trailer.end === REC_END.NOT_STARTED) {
    throw new RecordingError(`${rec.file} recorded a launch whose guest never started (the stub refused it): there is nothing to replay`);
  }
  const { startReplay } = await import('../record/replay.js');
  const { cpuMismatchLine, divergenceLine, recordedEvent } = await import('../record/verdict.js');
  const { mirrorExit } = await import('../supervise.js');

  const events = Number(rec.trailer.events);
  const until = a.until || (a.gdb ? Math.max(events, 1) : 0);
  let imageDir: string | undefined;
  let scratch: string | undefined;
  if (a.dumpcore) {
    prepareCoreDumps(a.dumpcore);
    imageDir = resolve(a.dumpcore);
  } else if (a.gdb) {
    imageDir = scratch = mkdtempSync(join(tmpdir(), 'tendril-replay-'));
  }
  const image = imageDir ? join(imageDir, basename(rec.meta.guest.name) || 'guest.spt') : undefined;
  if (image) writeFileSync(image, rec.image, { mode: 0o755 });
  const cleanup = () => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  };

  const flags = (a.quiet ? REC_PLAN_FLAG.QUIET : 0) | (a.gdb ? REC_PLAN_FLAG.GDB : 0) |
    (a.dumpcore && until && !a.gdb ? REC_PLAN_FLAG.CORE_AT_UNTIL : 0);
  let run;
  try {
    run = startReplay(rec, { flags, until, dumpable: Boolean(a.dumpcore || a.gdb || process.geteuid?.() !== 0) });
  } catch (e) {
    cleanup();
    throw e;
  }
  // A Ctrl-C reaches the guest and its monitor directly (same process group); a kill of this process is passed on.
  const child = run.child;
  for (const sig of ['SIGINT', 'SIGQUIT'] as const) process.on(sig, () => undefined);
  for (const sig of ['SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
  run.onStatus((s) => {
    if (s.outcome === REPLAY_OUT.STOPPED && a.gdb) {
      process.stderr.write(`tendril: replay stopped before event ${s.event}, ${recordedEvent(s, rec)}: the guest (pid ${s.guest_pid}) is stopped; ` +
        `attach with: gdb ${image} -p ${s.guest_pid}  (then 'continue'; from there on no recording answers its calls)\n`);
    }
  });
  const { end, status } = await run.done;
  cleanup();
  switch (status?.outcome) {
    case REPLAY_OUT.FAITHFUL:
      if (status.detail & REPLAY_NOTE.SIGNAL_MOMENT) {
        process.stderr.write(`tendril: note: the guest's ${signalName(end.signal ?? 0)} came from outside while it ran its own code; the replay sent it ` +
          'at the recorded instruction (or, when no instruction was recorded, at the call after the last event) but not at the recorded moment, which ' +
          'this host cannot count its way to: the state it died in may differ\n');
      }
      if (end.signal !== undefined) process.stderr.write(`tendril: replayed to its recorded end: ${end.reason ?? `killed by ${signalName(end.signal)}`}\n`);
      return mirrorExit(end);
    case REPLAY_OUT.DIVERGED:
      process.stderr.write(`tendril: ${divergenceLine(status, rec)}\n`);
      return REC.DIVERGED_STATUS;
    case REPLAY_OUT.STOPPED:
      if (a.gdb) return mirrorExit(end);
      process.stderr.write(`tendril: replay stopped before event ${status.event}: the guest is about to make ${recordedEvent(status, rec)}` +
        `${a.dumpcore ? `; its core is in ${resolve(a.dumpcore)} (gdb ${image} ${resolve(a.dumpcore)}/core)` : ''}\n`);
      return 0;
    case REPLAY_OUT.CPU_MISMATCH:
      throw new RecordingError(cpuMismatchLine(status, rec));
    case REPLAY_OUT.BAD_RECORDING:
      throw new RecordingError(`${rec.file} is corrupt: event ${status.event} cannot be read back as it was checked`, 'was the file changed during the replay?');
    case REPLAY_OUT.INTERRUPTED:
      process.stderr.write(`tendril: replay interrupted before event ${status.event} by ${signalName(status.detail)}, a signal from outside the recording\n`);
      return mirrorExit(end);
    default:
      // The stub failed before the guest existed; it said why on stderr.
      return end.status;
  }
}
