// tendril as a Kubernetes RuntimeClass, without a cluster: a private
// containerd with its CRI plugin inside a network namespace made for the
// test (tests/k8s/node.ts), driven over the CRI the way a kubelet drives it
// (tests/k8s/cri.ts). The `tendril` runtime handler's BinaryName is the
// native tendril-oci (through a wrapper that records each command line):
// each pod's pause container goes to runc through it, the unikernels to
// tendril. Every test removes its pods and then checks that nothing of
// them is left (processes, mounts, state, netns files, CNI results,
// cgroups, and the pod interface's redirects).

import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { guest, ROOT, tendril } from './helpers.js';
import { ContainerState, SandboxState, sandboxConfig, type ContainerSpec } from './k8s/cri.js';
import { criPrerequisites, CriNode, POD_GATEWAY, SIDECAR_IMAGE } from './k8s/node.js';
import type { Message } from './k8s/protobuf.js';

const NATIVE_OCI = join(ROOT, 'native/build/tendril-oci');
const missing = criPrerequisites();
const ctest = missing ? test.skip : test;
if (missing) test(`CRI tests skipped: ${missing}`, (t) => t.pass());

const HELLO = 'docker.io/tendril-test/cri-hello:1';
const SECCOMP = 'docker.io/tendril-test/cri-seccomp:1';
const PODNET = 'docker.io/tendril-test/cri-podnet:1';

let node: CriNode | undefined;
let dir = '';
let calls = '';
let podCount = 0;

test.before(async () => {
  if (missing) return;
  dir = mkdtempSync(join(tmpdir(), 'tendril-cri-'));
  calls = join(dir, 'calls.log');
  const wrapper = join(dir, 'tendril-oci');
  writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${calls}'\nexec '${NATIVE_OCI}' "$@"\n`);
  chmodSync(wrapper, 0o755);
  node = await CriNode.start({ tendrilBinary: wrapper });
  for (const [g, name] of [['test_hello', HELLO], ['test_seccomp', SECCOMP], ['test_podnet', PODNET]]) {
    const tar = join(dir, `${g}.tar`);
    const b = tendril(['image', 'build', guest(g), '-o', tar, '--name', name]);
    if (b.status !== 0) throw new Error(`tendril image build ${g}: ${b.stderr}`);
    await node.importImage(tar, g);
  }
});

test.after.always(async () => {
  await node?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Pod {
  id: string;
  config: Message;
  ip: string;
  /** The pause process (runc's), whose network namespace is the pod's. */
  pausePid: number;
}

async function runPod(annotations: Record<string, string> = {}): Promise<Pod> {
  const n = ++podCount;
  const config = sandboxConfig({
    name: `pod${n}`, uid: `uid-${process.pid}-${n}`, namespace: 'tendril-test', logDirectory: join(node!.logs, `pod${n}`),
    cgroupParent: node!.cgroupParent, annotations,
  });
  const id = await node!.client.runPodSandbox(config, 'tendril');
  node!.track(id);
  const st = await node!.client.podSandboxStatus(id);
  if (st.status.state !== SandboxState.READY) throw new Error(`pod ${id} is not ready: ${JSON.stringify(st.status)}`);
  await node!.podNetns(id);
  return { id, config, ip: st.status.network.ip, pausePid: await node!.pid(id, true) };
}

async function startContainer(pod: Pod, spec: ContainerSpec): Promise<string> {
  const id = await node!.client.createContainer(pod.id, pod.config, spec);
  await node!.client.startContainer(id);
  return id;
}

async function waitState(id: string, state: ContainerState, ms = 30_000): Promise<Message> {
  const end = Date.now() + ms;
  for (;;) {
    const st = (await node!.client.containerStatus(id)).status;
    if (st.state === state) return st;
    if (Date.now() > end) throw new Error(`container ${id} is ${ContainerState[st.state]}, not ${ContainerState[state]}, after ${ms / 1000} s`);
    await sleep(20);
  }
}

async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The CRI log format: RFC 3339 time, stream, F (full line) or P (partial), the text. */
function criLog(t: ExecutionContext, path: string): { stream: string; text: string }[] {
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
  return lines.map((l) => {
    const m = /^(\S+) (stdout|stderr) ([FP]) (.*)$/.exec(l);
    t.truthy(m, `not a CRI log line: ${JSON.stringify(l)}`);
    t.false(Number.isNaN(Date.parse(m![1])), `not a time: ${m![1]}`);
    return { stream: m![2], text: m![4] };
  });
}

function logText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The shim's command lines for one container id, with paths and the common globals taken out. */
function callsFor(id: string): string[] {
  return readFileSync(calls, 'utf8').split('\n').filter((l) => l.split(' ').includes(id))
    .map((l) => l.replace(/^.*--log-format json /, '').replace(/\/\S+/g, 'PATH').replace(id, 'ID'));
}

async function removePod(pod: Pod): Promise<void> {
  await node!.client.stopPodSandbox(pod.id);
  await node!.client.removePodSandbox(pod.id);
}

function netnsInode(pid: number): number {
  return statSync(`/proc/${pid}/ns/net`).ino;
}

/** ip/tc in the pod's network namespace. */
function inPod(pod: Pod, cmd: string, args: string[]): string {
  const r = spawnSync('nsenter', [`--net=/proc/${pod.pausePid}/ns/net`, cmd, ...args], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} in the pod: ${r.stderr}`);
  return r.stdout;
}

interface Eth0 {
  mac: string;
  addrs: string[];
  gateway?: string;
  qdiscs: string[];
  links: string[];
}

function eth0(pod: Pod): Eth0 {
  const link = JSON.parse(inPod(pod, 'ip', ['-j', 'addr', 'show', 'dev', 'eth0']))[0];
  const routes = JSON.parse(inPod(pod, 'ip', ['-j', '-4', 'route', 'show', 'default']));
  return {
    mac: link.address,
    addrs: link.addr_info.filter((a: { family: string }) => a.family === 'inet').map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`),
    gateway: routes.find((r: { dev: string }) => r.dev === 'eth0')?.gateway,
    qdiscs: JSON.parse(inPod(pod, 'tc', ['-j', 'qdisc', 'show', 'dev', 'eth0'])).map((q: { kind: string }) => q.kind),
    links: JSON.parse(inPod(pod, 'ip', ['-j', 'link', 'show'])).map((l: { ifname: string }) => l.ifname),
  };
}

/** One UDP datagram to ip:port from the node's namespace; the reply's payload. */
async function udpEcho(ip: string, port: number, payload: string): Promise<string> {
  const script = `const s = require('dgram').createSocket('udp4');
const t = setTimeout(() => { console.error('no reply'); process.exit(2); }, 5000);
s.on('message', (m) => { clearTimeout(t); process.stdout.write(m.toString()); s.close(); });
s.send(Buffer.from(${JSON.stringify(payload)}), ${port}, ${JSON.stringify(ip)});`;
  const r = await node!.run(process.execPath, ['-e', script], 20_000);
  if (r.status !== 0) throw new Error(`UDP echo to ${ip}:${port}: ${r.stderr}`);
  return r.stdout;
}

ctest('a unikernel pod: the pause container goes to runc, hello runs to exit 0 with a CRI log, a forbidden system call is 159', async (t) => {
  const pod = await runPod();
  t.true(pod.ip.startsWith('10.89.0.'), pod.ip);
  // The sandbox is runc's: tendril-oci recorded that and handed it over.
  t.regex(readFileSync(join(node!.tendrilRoot, 'k8s.io', pod.id, 'state'), 'utf8'), /^runtime runc$/m);
  // runc's start returns as its init is released to exec /pause: wait for the exec, not for a time.
  t.is(await waitFor('the pause process to exec', () => {
    const cmd = readFileSync(`/proc/${pod.pausePid}/cmdline`, 'latin1');
    return cmd !== '' && !cmd.includes('runc\0init') && cmd;
  }), '/pause\0');

  const hello = await startContainer(pod, { name: 'hello', image: HELLO, args: ['Hello_Solo5'], logPath: 'hello.log', memoryLimit: 8 << 20 });
  const done = await waitState(hello, ContainerState.EXITED);
  t.is(done.exitCode, 0, logText(done.logPath));
  t.is(done.reason, 'Completed');
  const log = criLog(t, done.logPath);
  const out = log.filter((l) => l.stream === 'stdout').map((l) => l.text);
  t.true(out.includes('Hello, World'), out.join('\n'));
  t.true(out.includes("Command line is: 'Hello_Solo5'"));
  t.true(out.includes('Solo5: Memory map: 8 MB addressable:'), 'the memory limit is the guest memory');
  t.true(out.includes('SUCCESS'));

  const sys = await startContainer(pod, { name: 'seccomp', image: SECCOMP, logPath: 'seccomp.log' });
  const killed = await waitState(sys, ContainerState.EXITED);
  t.is(killed.exitCode, 159, 'the sandbox killed the guest with SIGSYS');
  t.is(killed.reason, 'Error');

  const helloCalls = callsFor(hello);
  t.log(`shim → tendril-oci for a unikernel:\n  ${helloCalls.join('\n  ')}`);
  t.log(`shim → tendril-oci for the pod's sandbox:\n  ${callsFor(pod.id).join('\n  ')}`);
  t.deepEqual(helloCalls.slice(0, 2), ['create --bundle PATH --pid-file PATH ID', 'start ID']);
  t.true(helloCalls.includes('delete ID'), 'the CRI deletes the task when it exits');

  await removePod(pod);
  t.deepEqual(node!.leftovers([pod.id, hello, sys], [pod.pausePid]), { processes: [], mounts: [], files: [] });
});

ctest('pod networking: the guest owns the pod IP (ping, UDP echo), takes eth0\'s MAC and its IP from {{pod.*}}; eth0 is given back', async (t) => {
  const pod = await runPod({ 'org.tendril.pod-net.service0': 'eth0' });
  const before = eth0(pod);
  t.deepEqual(before.addrs, [`${pod.ip}/24`]);
  t.is(before.gateway, POD_GATEWAY);

  const id = await startContainer(pod, {
    name: 'net', image: PODNET, args: ['--ipv4={{pod.ipv4}}/{{pod.prefix}}', '--ipv4-gateway={{pod.gateway}}'], logPath: 'net.log',
    memoryLimit: 16 << 20,
  });
  const st = await waitState(id, ContainerState.RUNNING);
  await waitFor('the guest to serve', () => /Serving ping on/.test(logText(st.logPath)));
  const text = criLog(t, st.logPath).map((l) => l.text);
  t.true(text.includes(`Pod network: ${pod.ip}/24, gateway ${POD_GATEWAY}`), text.join('\n'));
  t.true(text.includes(`Serving ping on ${pod.ip} (service0), MAC ${before.mac}, MTU 1500`), 'the guest has eth0\'s MAC');

  // The container's process runs the guest's image (jailed: as its waiter, below).
  const pid = await node!.pid(id);
  t.is(readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')[0], 'tendril: test_podnet.spt');
  // Jailed (the pod asks for namespaces): the container's pid is the guest's waiter, in the pod's network namespace where the tap
  // was opened; the guest, its child under the filter, has a new, empty one and reaches the pod through the tap's fd.
  t.is(netnsInode(pid), netnsInode(pod.pausePid));
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const jailed = children.filter((c) => /^Seccomp:\s+2$/m.test(readFileSync(`/proc/${c}/status`, 'utf8')));
  t.is(jailed.length, 1, `one child of ${pid} runs the guest`);
  t.not(netnsInode(jailed[0]), netnsInode(pod.pausePid));
  const during = eth0(pod);
  t.deepEqual(during.addrs, [], 'the pod IP moved off eth0');
  t.true(during.qdiscs.includes('ingress'));
  const tap = during.links.find((l) => /^tdl[0-9a-f]{12}$/.test(l));
  t.truthy(tap, `a tap in the pod: ${during.links.join(', ')}`);
  t.is(inPod(pod, 'cat', [`/proc/sys/net/ipv6/conf/${tap}/disable_ipv6`]).trim(), '1', 'the namespace\'s own IPv6 stays off the tap');

  const ping = await node!.run('ping', ['-c', '3', '-i', '0.2', '-W', '5', pod.ip]);
  t.is(ping.status, 0, ping.stdout + ping.stderr);
  t.regex(ping.stdout, /3 packets transmitted, 3 received/);
  t.is(await udpEcho(pod.ip, 7007, 'hello through the pod'), 'hello through the pod');
  await waitFor('the guest to log the echo', () => /UDP echo: 21 bytes to 10\.89\.0\.1 port \d+/.test(logText(st.logPath)));

  // exec into a unikernel: refused, with the reason.
  await t.throwsAsync(node!.client.execSync(id, ['/bin/sh'], 10), { message: /exec is not supported for container \w+: a unikernel is one program/ });

  // A grace period: the CRI sends SIGTERM first, which ends a guest at once (it has no handler);
  // had it survived, the CRI would have sent SIGKILL after the period (137).
  await node!.client.stopContainer(id, 60);
  const stopped = await waitState(id, ContainerState.EXITED, 90_000);
  t.is(stopped.exitCode, 143, 'SIGTERM ended the guest');
  // The task's delete gives eth0 back as CNI made it.
  const after = await waitFor('eth0 to be given back', () => {
    const e = eth0(pod);
    return e.addrs.length > 0 && e.gateway !== undefined && e;
  });
  t.deepEqual(after.addrs, before.addrs);
  t.is(after.gateway, before.gateway);
  t.false(after.qdiscs.includes('ingress'), `qdiscs left on eth0: ${after.qdiscs.join(', ')}`);
  t.false(after.links.includes(tap!), 'the tap went with the guest');
  t.deepEqual(after.links.sort(), before.links.sort());
  const netCalls = callsFor(id);
  t.log(`shim → tendril-oci for a long-running net guest:\n  ${netCalls.join('\n  ')}`);
  t.true(netCalls.includes('kill ID 15'));

  await node!.client.removeContainer(id);
  await removePod(pod);
  t.deepEqual(node!.leftovers([pod.id, id], [pid, pod.pausePid]), { processes: [], mounts: [], files: [] });
});

ctest('a unikernel and an ordinary sidecar side by side: the sidecar is runc\'s (exec works there), the unikernel tendril\'s', async (t) => {
  const pod = await runPod();
  const sidecar = await startContainer(pod, { name: 'sidecar', image: SIDECAR_IMAGE, command: ['/pause', 'sidecar', 'up'], logPath: 'sidecar.log' });
  const side = await waitState(sidecar, ContainerState.RUNNING);
  const hello = await startContainer(pod, { name: 'hello', image: HELLO, args: ['Hello_Solo5'], logPath: 'hello.log' });
  const done = await waitState(hello, ContainerState.EXITED);
  t.is(done.exitCode, 0, logText(done.logPath));
  t.true(criLog(t, done.logPath).some((l) => l.text === 'SUCCESS'));

  await waitFor('the sidecar\'s line', () => /sidecar up/.test(logText(side.logPath)));
  t.deepEqual(criLog(t, side.logPath), [{ stream: 'stdout', text: 'sidecar up' }]);
  const spid = await node!.pid(sidecar);
  t.is(readFileSync(`/proc/${spid}/cmdline`, 'latin1'), '/pause\0sidecar\0up\0');
  t.not(readlinkSync(`/proc/${spid}/exe`), join(ROOT, 'native/build/tendril-stub'));
  t.is(netnsInode(spid), netnsInode(pod.pausePid), 'the sidecar is in the pod\'s network namespace');
  // tendril-oci remembers who runs it; runc keeps its own state under the container's directory.
  const state = join(node!.tendrilRoot, 'k8s.io', sidecar);
  t.regex(readFileSync(join(state, 'state'), 'utf8'), /^runtime runc$/m);
  t.true(statSync(join(state, 'runc', sidecar, 'state.json')).isFile());
  const exec = await node!.client.execSync(sidecar, ['/pause', '--exit', 'exec', 'works'], 10);
  t.deepEqual(exec, { stdout: 'exec works\n', stderr: '', exitCode: 0 });
  const sideCalls = callsFor(sidecar);
  t.log(`shim → tendril-oci for the sidecar:\n  ${sideCalls.join('\n  ')}`);
  t.true(sideCalls.some((c) => c.startsWith('exec ')), 'exec went through tendril-oci to runc');

  await removePod(pod);
  t.deepEqual(node!.leftovers([pod.id, sidecar, hello], [spid, pod.pausePid]), { processes: [], mounts: [], files: [] });
});

ctest('unikernels that cannot run: the CRI error is tendril\'s, the pod interface is as before, and nothing is left', async (t) => {
  // Refused before anything is touched: the annotation names a device the guest does not declare.
  const pod = await runPod({ 'org.tendril.pod-net.service9': 'eth0' });
  const before = eth0(pod);
  const id = await node!.client.createContainer(pod.id, pod.config, { name: 'bad', image: PODNET, args: ['--ipv4={{pod.ipv4}}/{{pod.prefix}}'], logPath: 'bad.log' });
  await t.throwsAsync(node!.client.startContainer(id), {
    message: /OCI runtime create failed: annotation org\.tendril\.pod-net\.service9: the guest \/test_podnet\.spt has no NET_BASIC device 'service9'/,
  });
  t.deepEqual(eth0(pod), before, 'the pod interface is untouched');
  await node!.client.removeContainer(id);
  await removePod(pod);

  // Refused after eth0 was taken over (the launch plan rejects a command line over 8 KiB): create gives it back.
  const pod2 = await runPod({ 'org.tendril.pod-net.service0': 'eth0' });
  const before2 = eth0(pod2);
  const id2 = await node!.client.createContainer(pod2.id, pod2.config, {
    name: 'long', image: PODNET, args: ['--ipv4={{pod.ipv4}}/{{pod.prefix}}', 'x'.repeat(9000)], logPath: 'long.log',
  });
  await t.throwsAsync(node!.client.startContainer(id2), { message: /OCI runtime create failed: Guest command line too long/ });
  t.deepEqual(eth0(pod2), before2, 'the pod interface was given back');
  await node!.client.removeContainer(id2);
  await removePod(pod2);
  t.deepEqual(node!.leftovers([pod.id, id, pod2.id, id2], [pod.pausePid, pod2.pausePid]), { processes: [], mounts: [], files: [] });
});

