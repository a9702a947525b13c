// A CRI (Kubernetes Container Runtime Interface, runtime.v1) client for the
// tests, the way a kubelet drives containerd: gRPC over containerd's unix
// socket, with only the messages and fields the tests use, written out here
// from the CRI v1 API's field numbers (k8s.io/cri-api, api.proto).

import * as grpc from '@grpc/grpc-js';
import { decode, encode, type Message, type Schema } from './protobuf.js';

const s = (no: number): Schema[string] => ({ no, type: 'string' });
const map = (no: number): Schema[string] => ({ no, type: 'map' });
const msg = (no: number, type: Schema, repeated = false): Schema[string] => ({ no, type, repeated });

export enum NamespaceMode { POD = 0, CONTAINER = 1, NODE = 2 }
export enum ContainerState { CREATED = 0, RUNNING = 1, EXITED = 2, UNKNOWN = 3 }
export enum SandboxState { READY = 0, NOTREADY = 1 }

const VersionRequest: Schema = { version: s(1) };
const VersionResponse: Schema = { version: s(1), runtimeName: s(2), runtimeVersion: s(3), runtimeApiVersion: s(4) };

const PodSandboxMetadata: Schema = { name: s(1), uid: s(2), namespace: s(3), attempt: { no: 4, type: 'uint32' } };
const NamespaceOption: Schema = { network: { no: 1, type: 'enum' }, pid: { no: 2, type: 'enum' }, ipc: { no: 3, type: 'enum' } };
const LinuxSandboxSecurityContext: Schema = { namespaceOptions: msg(1, NamespaceOption) };
const LinuxContainerResources: Schema = {
  cpuPeriod: { no: 1, type: 'int64' }, cpuQuota: { no: 2, type: 'int64' }, cpuShares: { no: 3, type: 'int64' },
  memoryLimitInBytes: { no: 4, type: 'int64' }, oomScoreAdj: { no: 5, type: 'int64' },
};
const LinuxPodSandboxConfig: Schema = { cgroupParent: s(1), securityContext: msg(2, LinuxSandboxSecurityContext) };
const PodSandboxConfig: Schema = {
  metadata: msg(1, PodSandboxMetadata), hostname: s(2), logDirectory: s(3), labels: map(6), annotations: map(7),
  linux: msg(8, LinuxPodSandboxConfig),
};
const RunPodSandboxRequest: Schema = { config: msg(1, PodSandboxConfig), runtimeHandler: s(2) };
const RunPodSandboxResponse: Schema = { podSandboxId: s(1) };
const PodSandboxIdRequest: Schema = { podSandboxId: s(1) };
const Empty: Schema = {};
const PodSandboxStatusRequest: Schema = { podSandboxId: s(1), verbose: { no: 2, type: 'bool' } };
const PodSandboxNetworkStatus: Schema = { ip: s(1) };
const PodSandboxStatus: Schema = {
  id: s(1), metadata: msg(2, PodSandboxMetadata), state: { no: 3, type: 'enum' }, createdAt: { no: 4, type: 'int64' },
  network: msg(5, PodSandboxNetworkStatus), labels: map(7), annotations: map(8), runtimeHandler: s(9),
};
const PodSandboxStatusResponse: Schema = { status: msg(1, PodSandboxStatus), info: map(2) };

const ContainerMetadata: Schema = { name: s(1), attempt: { no: 2, type: 'uint32' } };
const ImageSpec: Schema = { image: s(1), annotations: map(2) };
const KeyValue: Schema = { key: s(1), value: s(2) };
const LinuxContainerSecurityContext: Schema = { namespaceOptions: msg(3, NamespaceOption) };
const LinuxContainerConfig: Schema = { resources: msg(1, LinuxContainerResources), securityContext: msg(2, LinuxContainerSecurityContext) };
const ContainerConfig: Schema = {
  metadata: msg(1, ContainerMetadata), image: msg(2, ImageSpec), command: { no: 3, type: 'string', repeated: true },
  args: { no: 4, type: 'string', repeated: true }, workingDir: s(5), envs: msg(6, KeyValue, true), labels: map(9),
  annotations: map(10), logPath: s(11), linux: msg(15, LinuxContainerConfig),
};
const CreateContainerRequest: Schema = { podSandboxId: s(1), config: msg(2, ContainerConfig), sandboxConfig: msg(3, PodSandboxConfig) };
const CreateContainerResponse: Schema = { containerId: s(1) };
const ContainerIdRequest: Schema = { containerId: s(1) };
const StopContainerRequest: Schema = { containerId: s(1), timeout: { no: 2, type: 'int64' } };
const ContainerStatusRequest: Schema = { containerId: s(1), verbose: { no: 2, type: 'bool' } };
const ContainerStatus: Schema = {
  id: s(1), metadata: msg(2, ContainerMetadata), state: { no: 3, type: 'enum' }, createdAt: { no: 4, type: 'int64' },
  startedAt: { no: 5, type: 'int64' }, finishedAt: { no: 6, type: 'int64' }, exitCode: { no: 7, type: 'int32' },
  image: msg(8, ImageSpec), imageRef: s(9), reason: s(10), message: s(11), labels: map(12), annotations: map(13), logPath: s(15),
};
const ContainerStatusResponse: Schema = { status: msg(1, ContainerStatus), info: map(2) };
const ContainerFilter: Schema = { id: s(1), podSandboxId: s(3) };
const ListContainersRequest: Schema = { filter: msg(1, ContainerFilter) };
const Container: Schema = { id: s(1), podSandboxId: s(2), metadata: msg(3, ContainerMetadata), state: { no: 6, type: 'enum' } };
const ListContainersResponse: Schema = { containers: msg(1, Container, true) };
const ExecSyncRequest: Schema = { containerId: s(1), cmd: { no: 2, type: 'string', repeated: true }, timeout: { no: 3, type: 'int64' } };
const ExecSyncResponse: Schema = { stdout: { no: 1, type: 'bytes' }, stderr: { no: 2, type: 'bytes' }, exitCode: { no: 3, type: 'int32' } };
const ImageStatusRequest: Schema = { image: msg(1, ImageSpec), verbose: { no: 2, type: 'bool' } };
const Image: Schema = { id: s(1), repoTags: { no: 2, type: 'string', repeated: true } };
const ImageStatusResponse: Schema = { image: msg(1, Image) };

export interface SandboxConfig {
  name: string;
  uid: string;
  namespace: string;
  logDirectory: string;
  cgroupParent: string;
  annotations?: Record<string, string>;
}

export interface ContainerSpec {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  logPath: string;
  annotations?: Record<string, string>;
  memoryLimit?: number;
  /** As a kubelet sets them for a BestEffort pod (cpu.shares 2), unless given. */
  cpuShares?: number;
}

/** The sandbox config as a kubelet fills it in for an ordinary pod: pod network, pod IPC, container PID namespaces. */
export function sandboxConfig(c: SandboxConfig): Message {
  return {
    metadata: { name: c.name, uid: c.uid, namespace: c.namespace, attempt: 0 },
    hostname: c.name,
    logDirectory: c.logDirectory,
    labels: { 'io.kubernetes.pod.name': c.name, 'io.kubernetes.pod.namespace': c.namespace, 'io.kubernetes.pod.uid': c.uid },
    annotations: c.annotations ?? {},
    linux: {
      cgroupParent: c.cgroupParent,
      securityContext: { namespaceOptions: { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD } },
    },
  };
}

export class CriClient {
  private readonly client: grpc.Client;

  constructor(socket: string) {
    this.client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  close(): void {
    this.client.close();
  }

  private call(service: 'RuntimeService' | 'ImageService', method: string, req: Schema, res: Schema, body: Message,
    timeoutMs = 60_000): Promise<Message> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(`/runtime.v1.${service}/${method}`, (m: Message) => encode(req, m), (b: Buffer) => decode(res, b), body,
        { deadline: Date.now() + timeoutMs }, (err, value) => {
          if (err) reject(new Error(`CRI ${method}: ${err.details || err.message}`));
          else resolve(value!);
        });
    });
  }

  version(): Promise<Message> {
    return this.call('RuntimeService', 'Version', VersionRequest, VersionResponse, { version: 'v1' });
  }

  async runPodSandbox(config: Message, runtimeHandler: string): Promise<string> {
    return (await this.call('RuntimeService', 'RunPodSandbox', RunPodSandboxRequest, RunPodSandboxResponse, { config, runtimeHandler })).podSandboxId;
  }

  async podSandboxStatus(podSandboxId: string): Promise<Message> {
    return (await this.call('RuntimeService', 'PodSandboxStatus', PodSandboxStatusRequest, PodSandboxStatusResponse,
      { podSandboxId, verbose: true }));
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.call('RuntimeService', 'StopPodSandbox', PodSandboxIdRequest, Empty, { podSandboxId });
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.call('RuntimeService', 'RemovePodSandbox', PodSandboxIdRequest, Empty, { podSandboxId });
  }

  async createContainer(podSandboxId: string, sandbox: Message, c: ContainerSpec): Promise<string> {
    const config = {
      metadata: { name: c.name, attempt: 0 },
      image: { image: c.image },
      command: c.command ?? [],
      args: c.args ?? [],
      logPath: c.logPath,
      labels: { 'io.kubernetes.container.name': c.name },
      annotations: c.annotations ?? {},
      linux: {
        resources: { cpuShares: c.cpuShares ?? 2, memoryLimitInBytes: c.memoryLimit ?? 0, oomScoreAdj: 1000 },
        securityContext: { namespaceOptions: { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD } },
      },
    };
    return (await this.call('RuntimeService', 'CreateContainer', CreateContainerRequest, CreateContainerResponse,
      { podSandboxId, config, sandboxConfig: sandbox })).containerId;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.call('RuntimeService', 'StartContainer', ContainerIdRequest, Empty, { containerId });
  }

  async stopContainer(containerId: string, timeoutS: number): Promise<void> {
    await this.call('RuntimeService', 'StopContainer', StopContainerRequest, Empty, { containerId, timeout: timeoutS });
  }

  async removeContainer(containerId: string): Promise<void> {
    await this.call('RuntimeService', 'RemoveContainer', ContainerIdRequest, Empty, { containerId });
  }

  async containerStatus(containerId: string): Promise<Message> {
    return (await this.call('RuntimeService', 'ContainerStatus', ContainerStatusRequest, ContainerStatusResponse,
      { containerId, verbose: true }));
  }

  async listContainers(podSandboxId?: string): Promise<Message[]> {
    return (await this.call('RuntimeService', 'ListContainers', ListContainersRequest, ListContainersResponse,
      { filter: podSandboxId ? { podSandboxId } : {} })).containers;
  }

  async execSync(containerId: string, cmd: string[], timeoutS: number): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    const r = await this.call('RuntimeService', 'ExecSync', ExecSyncRequest, ExecSyncResponse, { containerId, cmd, timeout: timeoutS },
      (timeoutS + 30) * 1000);
    return { stdout: r.stdout.toString(), stderr: r.stderr.toString(), exitCode: r.exitCode };
  }

  async imageStatus(image: string): Promise<Message | undefined> {
    return (await this.call('ImageService', 'ImageStatus', ImageStatusRequest, ImageStatusResponse, { image: { image } })).image;
  }
}
