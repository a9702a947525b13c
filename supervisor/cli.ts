// The `tendril` command: a thin dispatcher. Each verb lives in its own module
// and is imported only when asked for, so `tendril run` loads nothing it does
// not use (the cold path is what fast-boot users pay for).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { errorLine, isTendrilError, UsageError } from './errors.js';

export type Verb = (argv: string[], prog: string) => Promise<number> | number;

const VERBS: Record<string, { load: () => Promise<Verb>; summary: string }> = {
  run: { load: async () => (await import('./verbs/run.js')).runVerb, summary: 'run a guest (solo5-spt compatible options)' },
  replay: { load: async () => (await import('./verbs/replay.js')).replayVerb, summary: 're-run a recorded execution (run --record=FILE) exactly, anywhere, under gdb' },
  cc: { load: async () => (await import('./verbs/cc.js')).ccVerb, summary: 'build a guest from C sources' },
  filter: { load: async () => (await import('./verbs/filter.js')).filterVerb, summary: 'show the syscall filter a guest would run under' },
  inspect: { load: async () => (await import('./verbs/inspect.js')).inspectVerb, summary: 'describe a guest image and why it would be rejected' },
  serve: { load: async () => (await import('./verbs/serve.js')).serveVerb, summary: 'run the launch API server (unix socket)' },
  launch: { load: async () => (await import('./verbs/launch.js')).launchVerb, summary: 'run a guest through a server: tendril launch --server SOCKET GUEST' },
  elftool: { load: async () => (await import('./verbs/elftool.js')).elftoolVerb, summary: 'gen-manifest, query-manifest, query-abi' },
  snapshot: { load: async () => (await import('./verbs/snapshot.js')).snapshotVerb, summary: 'boot a guest to its first blocking yield and save it: tendril snapshot create -o DIR GUEST' },
  image: { load: async () => (await import('./verbs/image.js')).imageVerb, summary: 'package a guest as an OCI image: tendril image build GUEST -o IMAGE.tar' },
};

export function version(): string {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8'));
  return pkg.version;
}

/** `tendril --version`, `tendril version`, `tendril -v`, `tendril run --version`: the same text, on stdout. */
export function versionText(): string {
  return `tendril ${version()}\nABI version 2 (Solo5 spt)\n`;
}

function usage(): string {
  const verbs = Object.entries(VERBS).map(([v, { summary }]) => `  ${v.padEnd(10)} ${summary}`).join('\n');
  return `usage: tendril VERB [ OPTIONS ] ...
Run Solo5 spt unikernels as seccomp-sandboxed Linux processes.

Verbs:
${verbs}
  version    print the tendril and ABI versions
  help       show this help

\`tendril VERB --help\` describes each verb.`;
}

/** Prints a TendrilError on one line (message, then the hint) and returns exit status 1. */
export function report(prog: string, e: unknown): number {
  if (isTendrilError(e)) {
    let line = `${prog}: ${errorLine(e)}`;
    if (!e.hint && e instanceof UsageError && e.showUsage) line += `; see \`${prog === 'tendril-spt' ? prog : `${prog} run`} --help\``;
    process.stderr.write(`${line}\n`);
    return 1;
  }
  const err = e as Error;
  process.stderr.write(`${prog}: ${errorLine(e)}${process.env.TENDRIL_DEBUG ? `\n${err?.stack}` : ' (set TENDRIL_DEBUG=1 for details)'}\n`);
  return 1;
}

export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined) {
    // Nothing asked for: the usage is the answer, but as an error.
    process.stderr.write(`${usage()}\n`);
    return 1;
  }
  if (verb === 'help' || verb === '--help' || verb === '-h') {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (verb === 'version' || verb === '--version' || verb === '-v' || verb === '-V') {
    process.stdout.write(versionText());
    return 0;
  }
  const entry = VERBS[verb];
  if (!entry) return report('tendril', new UsageError(`unknown verb '${verb}'`, 'run `tendril help` for the list'));
  try {
    return await (await entry.load())(rest, 'tendril');
  } catch (e) {
    return report('tendril', e);
  }
}
