/**
 * CgroupProcessOwnerMap: which VM a host process belongs to, from its cgroup membership.
 *
 * proc(5): /proc/<pid>/cgroup lists "hierarchy-ID:controller-list:cgroup-path" per hierarchy; on
 * cgroup v2 the single line is "0::<path>". A process is a VM's when its path is the VM's qemu cgroup
 * or below it (vcpu/emulator sub-cgroups). Used for NVML processes (a GPU context opened by a qemu
 * process, or by a process a VM owns) when no explicit ProcessOwnerMap is configured.
 */
import type { HostFs, ProcessOwnerMap } from '@wattsplit/wire';

export class CgroupProcessOwnerMap implements ProcessOwnerMap {
  /** VM cgroup path (relative to the hierarchy root) → VM uuid; replaced every round. */
  private paths: [string, string][] = [];
  private readonly cache = new Map<number, string | undefined>();

  constructor(private readonly fs: HostFs) {}

  /** The VMs' cgroup paths of this round (from the VM sampler). Clears the per-pid cache. */
  update(cgroupPathByUuid: ReadonlyMap<string, string>): void {
    this.paths = [...cgroupPathByUuid].map(([uuid, path]) => [path, uuid]);
    this.cache.clear();
  }

  ownerOf(pid: number): string | undefined {
    if (this.cache.has(pid)) return this.cache.get(pid);
    let owner: string | undefined;
    try {
      const text = this.fs.readText(`/proc/${pid}/cgroup`);
      for (const line of text.split('\n')) {
        const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
        for (const [vmPath, uuid] of this.paths) {
          if (path === vmPath || path.startsWith(`${vmPath}/`)) {
            owner = uuid;
            break;
          }
        }
        if (owner) break;
      }
    } catch {
      owner = undefined; // the process exited
    }
    this.cache.set(pid, owner);
    return owner;
  }
}
