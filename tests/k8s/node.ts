// A Kubernetes node without a kubelet, for the CRI tests and the bench: a
// private containerd (its own config, root, state, socket and runtime roots
// under one temp dir) with its CRI plugin, running inside a network
// namespace made for it, where the CNI bridge and the pods' veths live too;
// a sandbox (pause) image built here from tests/k8s/pause.c; and a CRI
// client. Everything it makes it also removes, and `leftovers()` lists
// whatever of it is still there, so a test can assert that nothing is.
//
// How containerd is started matters on these machines: in a mount
// namespace of its own (slave to the host's, so its rootfs, shm and netns
// mounts never reach the host and vanish with its processes), entered into
// the network namespace with nsenter, which keeps the host's /sys and so
// /sys/fs/cgroup (`ip netns exec` remounts /sys and runc then finds no
// cgroup mount). restrict_oom_score_adj: the VM lacks CAP_SYS_RESOURCE, and
// runc would fail to lower the pause container's oom_score_adj. No iptables
// here, so the bridge does no masquerading; pod IPs are reachable only from
// inside the namespace.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildLayout } from '../../supervisor/oci/image.js';
import { ROOT, runCmdAsync, type RunResult } from '../helpers.js';
import { Netns, uniqueNsName } from '../netns.js';
import { CriClient } from './cri.js';

export const PAUSE_IMAGE = 'docker.io/tendril-test/pause:1';
export const SIDECAR_IMAGE = PAUSE_IMAGE;
const CNI_BIN = '/usr/lib/cni';
export const POD_SUBNET = '10.89.0.0/24';
export const POD_GATEWAY = '10.89.0.1';

export interface NodeOptions {
  /** BinaryName of the `tendril` runtime handler. */
  tendrilBinary: string;
  /** BinaryName of the `runc` handler (default: runc from PATH). */
  runcBinary?: string;
}

/** What the node made that is still there (empty when all is clean). */
export interface Leftovers {
  processes: string[];
  mounts: string[];
  files: string[];
}

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Whether this machine can run the CRI tests, and if not, why (by name). */
export function criPrerequisites(): string | undefined {
  if (process.getuid?.() !== 0) return 'they need root';
  for (const [cmd, pkg] of [['containerd', 'containerd'], ['ctr', 'containerd'], ['runc', 'runc'], ['nsenter', 'util-linux'], ['gcc', 'gcc']]) {
    if (!which(cmd)) return `${cmd} is missing (apt-get install ${pkg})`;
  }
  for (const plugin of ['bridge', 'host-local', 'loopback']) {
    if (!existsSync(join(CNI_BIN, plugin))) return `the CNI plugin ${CNI_BIN}/${plugin} is missing (apt-get install containernetworking-plugins)`;
  }
  return undefined;
}

/** Field 22 of /proc/PID/stat: with the pid, a process's identity. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function pidsAlive(pids: number[]): number[] {
  return pids.filter((p) => {
    try {
      return !/^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, 'utf8'));
    } catch {
      return false;
    }
  });
}

/** The processes whose command line names `needle` (our socket, our dir): ours by construction. */
function processesNaming(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'latin1').includes(needle)) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

export class CriNode {
  readonly dir: string;
  readonly address: string;
  readonly netns: Netns;
  readonly client: CriClient;
  /** The CNI network's name: unique, so libcni's cache files are recognisably ours. */
  readonly network: string;
  readonly cgroupParent: string;
  readonly logs: string;
  /** The runtime roots of the two handlers (the shim's --root). */
  readonly tendrilRoot: string;
  readonly runcRoot: string;
  private daemon?: ChildProcess;
  private daemonPid = 0;
  private readonly pods = new Set<string>();
  /** pod id → its network namespace file. */
  private readonly netnsFiles = new Map<string, string>();
  /** pid → start time, for the processes pid() looked up. */
  private readonly started = new Map<number, string>();

  private constructor(dir: string, netns: Netns) {
    this.dir = dir;
    this.netns = netns;
    this.address = join(dir, 'containerd.sock');
    this.network = `tendril-k8s-${process.pid}-${netns.name.split('-').pop()}`;
    this.cgroupParent = `/${this.network}`;
    this.logs = join(dir, 'logs');
    this.tendrilRoot = join(dir, 'tendril-root');
    this.runcRoot = join(dir, 'runc-root');
    this.client = new CriClient(this.address);
  }

  static async start(o: NodeOptions): Promise<CriNode> {
    const dir = mkdtempSync(join(tmpdir(), 'tendril-k8s-'));
    let netns: Netns;
    try {
      netns = Netns.create([], uniqueNsName());
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    const node = new CriNode(dir, netns);
    try {
      await node.boot(o);
      return node;
    } catch (e) {
      await node.stop();
      throw e;
    }
  }

  private config(o: NodeOptions): string {
    const snapshotter = /\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8')) ? 'overlayfs' : 'native';
    const cri = 'plugins."io.containerd.grpc.v1.cri"';
    const runtime = (name: string, binary: string, root: string, annotations: boolean) => `
[${cri}.containerd.runtimes.${name}]
  runtime_type = "io.containerd.runc.v2"
${annotations ? '  pod_annotations = ["org.tendril.*"]\n  container_annotations = ["org.tendril.*"]\n' : ''}[${cri}.containerd.runtimes.${name}.options]
  BinaryName = "${binary}"
  Root = "${root}"
`;
    return `version = 2
root = "${this.dir}/root"
state = "${this.dir}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "${this.address}"
[ttrpc]
  address = "${this.address}.ttrpc"
[${cri}]
  sandbox_image = "${PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
[${cri}.containerd]
  snapshotter = "${snapshotter}"
  default_runtime_name = "runc"
${runtime('runc', o.runcBinary ?? which('runc') ?? 'runc', this.runcRoot, false)}${runtime('tendril', o.tendrilBinary, this.tendrilRoot, true)}
[${cri}.cni]
  bin_dir = "${CNI_BIN}"
  conf_dir = "${this.dir}/cni"
  max_conf_num = 1
`;
  }

  private async boot(o: NodeOptions): Promise<void> {
    mkdirSync(join(this.dir, 'cni'));
    mkdirSync(this.logs);
    writeFileSync(join(this.dir, 'cni', '10-tendril.conflist'), JSON.stringify({
      cniVersion: '0.4.0',
      name: this.network,
      plugins: [{
        type: 'bridge', bridge: 'cni-tendril0', isGateway: true, ipMasq: false, hairpinMode: false,
        ipam: {
          type: 'host-local', ranges: [[{ subnet: POD_SUBNET, gateway: POD_GATEWAY }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(this.dir, 'ipam'),
        },
      }],
    }));
    writeFileSync(join(this.dir, 'config.toml'), this.config(o));
    const log = openSync(join(this.dir, 'containerd.log'), 'w');
    // unshare execs nsenter, which execs containerd: the pid we get is containerd's.
    this.daemon = spawn('unshare', ['--mount', '--propagation', 'slave', 'nsenter', `--net=/run/netns/${this.netns.name}`,
      'containerd', '--config', join(this.dir, 'config.toml')], { stdio: ['ignore', log, log], env: { ...process.env, NODE_EXTRA_CA_CERTS: '' } });
    closeSync(log);
    this.daemonPid = this.daemon.pid ?? 0;
    const end = Date.now() + 30_000;
    for (;;) {
      if (this.daemon.exitCode !== null) throw new Error(`containerd exited (${this.daemon.exitCode}): ${this.daemonLog().slice(-2000)}`);
      try {
        await this.client.version();
        break;
      } catch (e) {
        if (Date.now() > end) throw new Error(`containerd's CRI did not answer: ${(e as Error).message}; ${this.daemonLog().slice(-2000)}`);
        await sleep(50);
      }
    }
    await this.importImage(this.pauseImage(), 'pause');
  }

  daemonLog(): string {
    try {
      return readFileSync(join(this.dir, 'containerd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** The sandbox image: tests/k8s/pause.c, static, as /pause. */
  private pauseImage(): string {
    const bin = join(this.dir, 'pause');
    const cc = spawnSync('gcc', ['-O2', '-static', '-Wall', '-Werror', '-o', bin, join(ROOT, 'tests/k8s/pause.c')], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`gcc -static tests/k8s/pause.c: ${cc.stderr}`);
    const tar = join(this.dir, 'pause.tar');
    writeFileSync(tar, buildLayout({
      name: PAUSE_IMAGE, entrypoint: ['/pause'], files: [{ dest: '/pause', data: readFileSync(bin), mode: 0o755 }], labels: {},
      createdBy: 'tests/k8s/node.ts', comment: 'pod sandbox for the CRI tests',
    }).tarball);
    return tar;
  }

  ctr(args: string[], timeoutMs = 60_000): Promise<RunResult> {
    return runCmdAsync('ctr', ['--address', this.address, '--namespace', 'k8s.io', ...args], { timeoutMs });
  }

  async importImage(tar: string, what: string): Promise<void> {
    const r = await this.ctr(['images', 'import', tar]);
    if (r.status !== 0) throw new Error(`ctr images import ${what}: ${r.stderr}`);
  }

  /** Records a pod so that stop() removes it even if the test does not get that far. */
  track(podId: string): void {
    this.pods.add(podId);
  }

  /** The pod's network namespace file (from the verbose status), remembered for the leftover check. */
  async podNetns(podId: string): Promise<string> {
    const st = await this.client.podSandboxStatus(podId);
    const info = JSON.parse(st.info.info ?? '{}');
    const path = info?.runtimeSpec?.linux?.namespaces?.find((n: { type: string }) => n.type === 'network')?.path as string | undefined;
    if (!path) throw new Error(`no network namespace path in the status of pod ${podId}`);
    this.netnsFiles.set(podId, path.replace(/^\/var\/run\//, '/run/'));
    return path;
  }

  /** The pid of a container's (or sandbox's) process, from the verbose status; its start time is remembered. */
  async pid(containerId: string, sandbox = false): Promise<number> {
    const st = sandbox ? await this.client.podSandboxStatus(containerId) : await this.client.containerStatus(containerId);
    const pid = Number(JSON.parse(st.info.info ?? '{}').pid ?? 0);
    const start = startTime(pid);
    if (start) this.started.set(pid, start);
    return pid;
  }

  /** Runs CMD ARGS in the node's network namespace (where the pods' bridge is). */
  run(cmd: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
    return runCmdAsync('nsenter', [`--net=/run/netns/${this.netns.name}`, cmd, ...args], { timeoutMs });
  }

  /**
   * What is still there of the given pods and containers (all of the node's
   * when `ids` is empty): processes (theirs by id, or the pids given), mounts
   * in containerd's mount namespace, the runtimes' state directories, the
   * pods' netns files, libcni's cached results and cgroups under our parent.
   */
  leftovers(ids: string[] = [], pids: number[] = []): Leftovers {
    const mine = (text: string) => (ids.length === 0 ? true : ids.some((id) => text.includes(id)));
    const describe = (p: number) => {
      try {
        return `${p}: ${readFileSync(`/proc/${p}/cmdline`, 'latin1').replace(/\0/g, ' ').trim()}`;
      } catch {
        return `${p}`;
      }
    };
    const named = pidsAlive(processesNaming(this.address))
      .filter((p) => p !== this.daemonPid && mine(describe(p)));
    // A pid given is still ours only while it has the start time seen when it was looked up (pids are reused).
    const given = pidsAlive(pids).filter((p) => this.started.get(p) !== undefined && startTime(p) === this.started.get(p));
    const processes = [...new Set([...named, ...given])].map(describe);
    let mounts: string[] = [];
    if (this.daemonPid && pidsAlive([this.daemonPid]).length) {
      mounts = readFileSync(`/proc/${this.daemonPid}/mountinfo`, 'utf8').split('\n').map((l) => l.split(' ')[4])
        .filter((m) => m && (m.startsWith(`${this.dir}/`) || [...this.netnsFiles.values()].includes(m)) && mine(m + (this.podOfNetns(m) ?? '')));
    }
    const files: string[] = [...this.netnsFiles.entries()].filter(([pod, f]) => mine(pod) && existsSync(f)).map(([, f]) => f);
    try {
      files.push(...readdirSync('/var/lib/cni/results').filter((f) => f.startsWith(`${this.network}-`) && mine(f)).map((f) => join('/var/lib/cni/results', f)));
    } catch {
      // no cache dir at all
    }
    for (const root of [this.tendrilRoot, this.runcRoot]) {
      try {
        files.push(...readdirSync(root).flatMap((ns) => readdirSync(join(root, ns)).map((id) => join(root, ns, id))).filter(mine));
      } catch {
        // never made
      }
    }
    for (const d of this.cgroupDirs()) {
      files.push(...readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory() && mine(e.name)).map((e) => join(d, e.name)));
    }
    return { processes, mounts, files };
  }

  private podOfNetns(path: string): string | undefined {
    return [...this.netnsFiles.entries()].find(([, f]) => f === path)?.[0];
  }

  /**
   * The containers' processes, ours by construction: unikernel guests from
   * tendril-oci's records (while the pid still has the recorded start
   * time), runc's from the cgroups under our parent.
   */
  private containerPids(): number[] {
    const pids: number[] = [];
    try {
      for (const ns of readdirSync(this.tendrilRoot)) {
        for (const id of readdirSync(join(this.tendrilRoot, ns))) {
          try {
            const rec = readFileSync(join(this.tendrilRoot, ns, id, 'state'), 'utf8');
            const pid = Number(/^pid (\d+)$/m.exec(rec)?.[1]);
            const start = /^start_time (\d+)$/m.exec(rec)?.[1];
            if (start && startTime(pid) === start) pids.push(pid);
          } catch {
            // no record, a runc container, or the guest is gone
          }
        }
      }
    } catch {
      // no root yet
    }
    for (const d of this.cgroupDirs()) {
      for (const e of readdirSync(d, { withFileTypes: true }).filter((x) => x.isDirectory())) {
        try {
          pids.push(...readFileSync(join(d, e.name, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number));
        } catch {
          // removed meanwhile
        }
      }
    }
    return pidsAlive([...new Set(pids)]);
  }

  /** Our cgroup parent in each hierarchy (runc makes it and leaves it, empty, behind). */
  private cgroupDirs(): string[] {
    const out: string[] = [];
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const f = line.split(' ');
      const type = f[f.indexOf('-') + 1];
      if (type !== 'cgroup' && type !== 'cgroup2') continue;
      const d = join(f[4], this.cgroupParent);
      if (existsSync(d)) out.push(d);
    }
    return out;
  }

  /** Removes every pod, stops containerd and the shims (by pid), deletes the namespace and everything under the temp dir. */
  async stop(): Promise<void> {
    try {
      if (this.daemon && this.daemon.exitCode === null) {
        for (const pod of this.pods) {
          try {
            await this.client.stopPodSandbox(pod);
            await this.client.removePodSandbox(pod);
          } catch {
            // already gone, or containerd is in trouble: the kills below still end everything
          }
        }
      }
    } finally {
      this.client.close();
      // If containerd could not remove them: the containers' own processes, which outlive their shims.
      for (const pid of this.containerPids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      for (const pid of pidsAlive(processesNaming(this.address))) {
        if (pid === this.daemonPid) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      if (this.daemon && this.daemon.exitCode === null) {
        const gone = new Promise((r) => this.daemon!.once('exit', r));
        this.daemon.kill('SIGTERM');
        await Promise.race([gone, sleep(10_000).then(() => this.daemon!.kill('SIGKILL'))]);
      }
      await this.netns.destroy();
      for (const f of this.netnsFiles.values()) rmSync(f, { force: true });
      for (const d of ['/var/lib/cni/results']) {
        try {
          for (const f of readdirSync(d).filter((n) => n.startsWith(`${this.network}-`))) rmSync(join(d, f), { force: true });
        } catch {
          // no cache dir
        }
      }
      for (const d of this.cgroupDirs()) {
        for (const sub of [...readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(d, e.name)), d]) {
          try {
            rmdirSync(sub);
          } catch {
            // still in use: a process of ours survived
          }
        }
      }
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
