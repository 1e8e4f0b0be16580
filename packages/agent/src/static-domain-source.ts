/**
 * In-process DomainSource: a fixed (mutable) VM inventory. Used by tests, fixtures and hosts without
 * libvirt where the operator lists VMs in the config file.
 */
import type { DomainInfo, DomainSource } from '@wattsplit/wire';

export function domainInfo(p: Partial<DomainInfo> & Pick<DomainInfo, 'uuid' | 'name' | 'id'>): DomainInfo {
  return { state: 'running', vcpus: 1, memoryBytes: 0, tenant: '', gpuPciAddresses: [], taps: [], flavor: '', ...p };
}

export class StaticDomainSource implements DomainSource {
  constructor(public domains: DomainInfo[] = []) {}

  async listDomains(): Promise<DomainInfo[]> {
    return this.domains.map((d) => ({ ...d }));
  }
}
