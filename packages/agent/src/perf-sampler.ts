/**
 * Hardware counters per VM cgroup (cycles, instructions, LLC references/misses) from a PerfSource.
 * Where the PMU is not exposed (most VMs, CI machines) the source says unsupported once and the
 * frame carries no perf block: absence means unknown, never zero.
 */
import type { Logger, PerfSource } from '@wattsplit/wire';
import type { FrameUnderConstruction, RoundContext, Sampler, SamplerStatus } from './sampler.js';

export class PerfSampler implements Sampler {
  readonly name = 'perf';
  private said = false;
  private lastRead = 0;

  constructor(
    private readonly source: PerfSource,
    private readonly log: Logger,
  ) {}

  sample(frame: FrameUnderConstruction, ctx: RoundContext): void {
    if (!this.source.supported()) {
      if (!this.said) {
        this.said = true;
        this.log.warn({ code: 'SENSOR_UNAVAILABLE', source: 'perf' }, 'perf counters unsupported on this host (PMU not exposed or perf_event_open refused): VM samples carry no perf block');
      }
      return;
    }
    let n = 0;
    for (const vm of frame.vms) {
      const path = vm.uuid ? ctx.cgroupPathByUuid.get(vm.uuid) : undefined;
      if (path === undefined) continue;
      const r = this.source.read(path);
      if (!r) continue;
      vm.perf = { supported: true, cycles: r.cycles, instructions: r.instructions, llcMisses: r.llcMisses, llcReferences: r.llcReferences };
      n++;
    }
    this.lastRead = n;
  }

  status(): SamplerStatus {
    if (!this.source.supported()) {
      const reason = (this.source as { reason?: unknown }).reason;
      return { name: this.name, state: 'unavailable', detail: typeof reason === 'string' && reason ? reason : 'perf_event_open unsupported here (PMU not exposed, or perf_event_paranoid / missing CAP_PERFMON)' };
    }
    return { name: this.name, state: 'ok', detail: `perf counters read for ${this.lastRead} VM cgroups` };
  }

  close(): void {
    this.source.close?.();
  }
}
