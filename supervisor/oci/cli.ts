// `tendril-oci`: the runc command line, as containerd's shim
// (io.containerd.runc.v2) drives it, for containers whose init is a Solo5
// unikernel run by tendril. Global options come before the command, the
// command's options before its operands, as with runc:
//
//   tendril-oci [--root DIR] [--log FILE] [--log-format json|text] [--systemd-cgroup] COMMAND ...
//
// containerd 1.6's shim calls (seen in the --log): create --bundle B
// --pid-file F ID, start ID, kill ID SIG, delete ID, delete --force ID (and
// state, ps, pause, resume for the ctr task commands).

import { version } from '../cli.js';
import { isTendrilError, UsageError } from '../errors.js';
import { features, kill, pause, ps, remove, resume, start, state } from './commands.js';
import { errorLine } from './errors.js';
import { RuntimeLog, type RuntimeLogFormat } from './log.js';
import { DEFAULT_ROOT, OCI_VERSION } from './state.js';

const PROG = 'tendril-oci';

const USAGE = `usage: ${PROG} [GLOBAL OPTIONS] COMMAND [OPTIONS] ID
An OCI runtime (runc's command line) whose containers are Solo5 unikernels,
each run by tendril as a seccomp-sandboxed process. See docs/containerd.md.

Commands:
  create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK] ID
  start ID          run the created container's guest
  state ID          print the container's state (JSON)
  kill [--all] ID [SIGNAL]
  pause ID | resume ID
  ps [--format json|table] ID
  delete [--force] ID
  features          print the supported features (JSON)

Global options:
  --root DIR        state directory (default ${DEFAULT_ROOT})
  --log FILE        log every command and error to FILE
  --log-format F    json or text (default text)
  --systemd-cgroup, --debug, --criu PATH, --rootless V   accepted and ignored
  -v, --version     print the version`;

interface Globals {
  root: string;
  log?: string;
  logFormat: RuntimeLogFormat;
}

/** Splits "--flag=value" and "--flag value"; `takes` lists the flags with a value. */
class Args {
  i = 0;
  constructor(readonly argv: string[]) {}

  next(): string | undefined {
    return this.argv[this.i++];
  }

  peek(): string | undefined {
    return this.argv[this.i];
  }

  /** The value of a flag: after '=' in the same word, or the next word. */
  value(flag: string, inline: string | undefined): string {
    if (inline !== undefined) return inline;
    const v = this.next();
    if (v === undefined) throw new UsageError(`option ${flag} needs a value`);
    return v;
  }
}

function splitFlag(word: string): [string, string | undefined] {
  const eq = word.indexOf('=');
  return eq < 0 ? [word, undefined] : [word.slice(0, eq), word.slice(eq + 1)];
}

function parseGlobals(a: Args): Globals | 'version' | 'help' {
  const g: Globals = { root: DEFAULT_ROOT, logFormat: 'text' };
  for (let w = a.peek(); w !== undefined && w.startsWith('-'); w = a.peek()) {
    a.next();
    const [flag, inline] = splitFlag(w);
    switch (flag) {
      case '--root':
        g.root = a.value(flag, inline);
        break;
      case '--log':
        g.log = a.value(flag, inline);
        break;
      case '--log-format': {
        const f = a.value(flag, inline);
        if (f !== 'json' && f !== 'text') throw new UsageError(`--log-format ${f}: must be json or text`);
        g.logFormat = f;
        break;
      }
      // Cgroup managers and checkpointing: tendril creates no cgroups and checkpoints nothing.
      case '--systemd-cgroup':
      case '--debug':
        break;
      case '--criu':
      case '--rootless':
        a.value(flag, inline);
        break;
      case '-v':
      case '--version':
        return 'version';
      case '-h':
      case '--help':
        return 'help';
      default:
        throw new UsageError(`unknown global option ${flag}`, `see \`${PROG} --help\``);
    }
  }
  return g;
}

/** The command's own flags: `spec` maps each flag to whether it takes a value. Returns flags and operands. */
function parseCommand(cmd: string, a: Args, spec: Record<string, boolean>): { flags: Map<string, string>; rest: string[] } {
  const flags = new Map<string, string>();
  const rest: string[] = [];
  for (let w = a.next(); w !== undefined; w = a.next()) {
    if (rest.length > 0 || !w.startsWith('-') || w === '-') {
      rest.push(w);
      continue;
    }
    if (w === '--') {
      rest.push(...a.argv.slice(a.i));
      break;
    }
    const [flag, inline] = splitFlag(w);
    if (!(flag in spec)) throw new UsageError(`${cmd}: unknown option ${flag}`, `see \`${PROG} --help\``);
    flags.set(flag, spec[flag] ? a.value(flag, inline) : 'true');
  }
  return { flags, rest };
}

function oneId(cmd: string, rest: string[], max = 1): string {
  if (rest.length < 1 || rest.length > max) throw new UsageError(`${cmd}: expected a container ID${max > 1 ? ' and a signal' : ''}`);
  return rest[0];
}

const UNSUPPORTED: Record<string, string> = {
  exec: 'a unikernel is one program: there is nothing to exec into',
  run: 'use create, then start',
  update: 'tendril creates no cgroups, so there are no resources to update',
  checkpoint: 'checkpointing a guest is not supported',
  restore: 'restoring a guest is not supported',
  events: 'no cgroup statistics: tendril creates no cgroups',
  spec: 'write config.json yourself (or let containerd do it)',
};

async function dispatch(g: Globals, a: Args, log: RuntimeLog): Promise<number> {
  const cmd = a.next();
  if (cmd === undefined) throw new UsageError('missing command', `see \`${PROG} --help\``);
  switch (cmd) {
    case 'create': {
      const { flags, rest } = parseCommand(cmd, a, {
        '--bundle': true, '-b': true, '--pid-file': true, '--console-socket': true,
        '--no-pivot': false, '--no-new-keyring': false, '--preserve-fds': true,
      });
      const preserve = flags.get('--preserve-fds');
      if (preserve !== undefined && preserve !== '0') {
        throw new UsageError(`create: --preserve-fds ${preserve}: a guest keeps only its stdio and its devices`);
      }
      const { create } = await import('./create.js');
      await create({
        root: g.root, id: oneId(cmd, rest), bundle: flags.get('--bundle') ?? flags.get('-b') ?? '.',
        pidFile: flags.get('--pid-file'), consoleSocket: flags.get('--console-socket'), log,
      });
      return 0;
    }
    case 'start':
      await start(g.root, oneId(cmd, parseCommand(cmd, a, {}).rest));
      return 0;
    case 'state':
      process.stdout.write(state(g.root, oneId(cmd, parseCommand(cmd, a, {}).rest)));
      return 0;
    case 'kill': {
      const { flags, rest } = parseCommand(cmd, a, { '--all': false, '-a': false });
      kill(g.root, oneId(cmd, rest, 2), rest[1], flags.has('--all') || flags.has('-a'));
      return 0;
    }
    case 'pause':
      pause(g.root, oneId(cmd, parseCommand(cmd, a, {}).rest));
      return 0;
    case 'resume':
      resume(g.root, oneId(cmd, parseCommand(cmd, a, {}).rest));
      return 0;
    case 'ps': {
      const { flags, rest } = parseCommand(cmd, a, { '--format': true, '-f': true });
      process.stdout.write(ps(g.root, oneId(cmd, rest), flags.get('--format') ?? flags.get('-f') ?? 'table'));
      return 0;
    }
    case 'delete': {
      const { flags, rest } = parseCommand(cmd, a, { '--force': false, '-f': false });
      await remove(g.root, oneId(cmd, rest), flags.has('--force') || flags.has('-f'));
      return 0;
    }
    case 'features':
      parseCommand(cmd, a, {});
      process.stdout.write(features());
      return 0;
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    default:
      if (cmd in UNSUPPORTED) throw new UsageError(`${cmd} is not supported: ${UNSUPPORTED[cmd]}`);
      throw new UsageError(`unknown command '${cmd}'`, `see \`${PROG} --help\``);
  }
}

/** Runs one command; errors become one line on stderr and an "error" record in the log. */
export async function main(argv: string[]): Promise<number> {
  const a = new Args(argv);
  let log = new RuntimeLog(undefined);
  try {
    const g = parseGlobals(a);
    if (g === 'version') {
      process.stdout.write(`${PROG} version ${version()}\nspec: ${OCI_VERSION}\n`);
      return 0;
    }
    if (g === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    log = new RuntimeLog(g.log, g.logFormat);
    log.info(`${PROG} ${argv.join(' ')}`, { argv });
    return await dispatch(g, a, log);
  } catch (e) {
    const msg = errorLine(e);
    log.error(msg);
    process.stderr.write(`${PROG}: ${msg}${!isTendrilError(e) && process.env.TENDRIL_DEBUG ? `\n${(e as Error)?.stack}` : ''}\n`);
    return 1;
  }
}
