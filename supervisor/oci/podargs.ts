// The guest's command line can name its pod's network configuration, since
// a Solo5 guest takes its IP configuration as arguments (e.g. MirageOS's
// --ipv4=ADDR/PREFIX --ipv4-gateway=GW) and only the runtime learns the pod
// IP, after the image was built and the pod spec written. In process.args
// (after args[0]), create replaces:
//
//   {{pod.ipv4}}     the pod's IPv4 address            10.88.0.5
//   {{pod.prefix}}   its prefix length                 16
//   {{pod.gateway}}  the pod's default IPv4 gateway    10.88.0.1
//
// They need a device attached with org.tendril.pod-net.NAME. The braces are
// chosen so that a kubelet leaves them alone: it expands $(VAR) in a pod's
// command and args, never {{...}}.

import { BundleError } from './errors.js';

export const PLACEHOLDERS = ['ipv4', 'prefix', 'gateway'] as const;
export type PodValues = Record<(typeof PLACEHOLDERS)[number], string | undefined>;

const TOKEN = /\{\{\s*pod\.([A-Za-z0-9_-]*)\s*\}\}/g;

/** Checks every {{pod.X}} in the guest's arguments; returns whether there are any. */
export function checkPlaceholders(args: string[], podNet: string | undefined): boolean {
  let any = false;
  for (const [i, a] of args.entries()) {
    for (const m of a.matchAll(TOKEN)) {
      any = true;
      if (!(PLACEHOLDERS as readonly string[]).includes(m[1])) {
        throw new BundleError(`config.json: process.args[${i + 1}]: unknown placeholder ${m[0]}`,
          `tendril replaces ${PLACEHOLDERS.map((p) => `{{pod.${p}}}`).join(', ')}`);
      }
      if (!podNet) {
        throw new BundleError(`config.json: process.args[${i + 1}]: ${m[0]} needs the pod's interface, and no device takes it over`,
          'attach one with the annotation org.tendril.pod-net.NAME=eth0');
      }
    }
  }
  return any;
}

/** The arguments with the pod's values in place. */
export function substitute(args: string[], values: PodValues): string[] {
  return args.map((a, i) => a.replace(TOKEN, (tok, name: keyof PodValues) => {
    const v = values[name];
    if (v === undefined) {
      throw new BundleError(`config.json: process.args[${i + 1}]: ${tok}: the pod's interface has no ${name === 'gateway' ? 'default IPv4 route' : 'IPv4 address'}`);
    }
    return v;
  }));
}
