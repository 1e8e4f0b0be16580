/**
 * "additive_model": splits each host interval's measured energy with the learned additive host model.
 *
 * Per CPU-side source s (rapl, bmc_rest) with measured M over dt seconds:
 *   static  S = min(M, P_static · dt), split by the idle policy (presence-weighted, as cpu_share does);
 *           P_static is the model's learned static power (`staticFrom: 'model'`, default) or the context's;
 *   dynamic D = M − S, split in proportion to each term's g_s (VMs; CPU time outside VMs → host_overhead).
 * GPU: the learned signature split (GpuTimeSliceMethod); `observe`, `exportState` and `importState` are
 * its (the additive model itself is trained offline and versioned in the registry, so the GPU learners
 * are this method's only online state). Ends with `reconcile`, so every source sums
 * exactly to its measurement. Uncertainty: ± z · residual RMS of the model (W) · dt, shared in proportion
 * to each share's dynamic part, plus the spread of the static estimate.
 * No model for the interval's hardware class (cold start): the fallback (cpu_share) result, with
 * `note` saying so.
 */
import { CpuShareMethod, reconcile, staticSplitWeights, type AttributionContext, type AttributionMethod, type AttributionResult, type AttributionShare, type EntityKind, type HostInterval, type VmInterval } from '@wattsplit/attribution';
import { intervalFeatures, MODEL_SOURCES, termPowers, type AdditiveModelJson } from './additive-model.js';
import { GpuTimeSliceMethod, type GpuTimeSliceHostState } from './gpu-time-slice-method.js';

export const ADDITIVE_MODEL_METHOD = 'additive_model';

/**
 * Where models come from (the collector's ModelCatalog over the store; ModelRegistry over a directory).
 * Synchronous: the apply path never waits on I/O. `atUnixNs` is the interval's end: the version in force
 * then (activations take effect from a time, so replicas and replays pick the same version).
 */
export interface ModelLookup {
  get(hardwareClass: string, atUnixNs?: number): AdditiveModelJson | undefined;
}

export interface AdditiveModelMethodOptions {
  models: ModelLookup;
  /** Used when there is no model for a hardware class. Default CpuShareMethod. */
  fallback?: AttributionMethod;
  /** GPU attribution. Default a new GpuTimeSliceMethod. */
  gpu?: GpuTimeSliceMethod;
  /** Static power from the model (learned intercept) or from the AttributionContext. Default 'model'. */
  staticFrom?: 'model' | 'context';
  /** Width of the uncertainty interval in residual standard deviations. Default 1.96. */
  z?: number;
}

export class AdditiveModelMethod implements AttributionMethod {
  readonly name = ADDITIVE_MODEL_METHOD;
  private readonly models: ModelLookup;
  private readonly fallback: AttributionMethod;
  private readonly gpu: GpuTimeSliceMethod;
  private readonly staticFrom: 'model' | 'context';
  private readonly z: number;

  constructor(opts: AdditiveModelMethodOptions) {
    this.models = opts.models;
    this.fallback = opts.fallback ?? new CpuShareMethod();
    this.gpu = opts.gpu ?? new GpuTimeSliceMethod({ base: this.fallback });
    this.staticFrom = opts.staticFrom ?? 'model';
    this.z = opts.z ?? 1.96;
  }

  /** Feeds the GPU learners (the collector calls it after the interval is stored). */
  observe(iv: HostInterval): void {
    this.gpu.observe(iv);
  }

  /** The GPU learners' state for the host (learner `gpu_signature`). */
  exportState(hostId: string): GpuTimeSliceHostState | undefined {
    return this.gpu.exportState(hostId);
  }

  importState(hostId: string, state: unknown): void {
    this.gpu.importState(hostId, state);
  }

  attribute(iv: HostInterval, ctx: AttributionContext): AttributionResult {
    const model = this.models.get(iv.hardwareClass, iv.t1UnixNs);
    if (!model) {
      const r = this.gpu.attribute(iv, ctx);
      const note = [`cold start: no additive model for hardware class "${iv.hardwareClass}"; ${this.fallback.name}`, r.note].filter((x) => x !== '').join('; ');
      return { ...r, method: this.name, modelVersion: `fallback:${this.fallback.name}`, note };
    }
    const shares = new Map<string, AttributionShare>();
    const add = (kind: EntityKind, vm: VmInterval | undefined, source: 'rapl' | 'bmc_rest', dyn: number, sta: number, hw: number): void => {
      const key = `${kind}|${vm?.uuid ?? ''}|${source}`;
      let s = shares.get(key);
      if (!s) {
        s = { kind, vmUuid: vm?.uuid ?? '', vmName: vm?.name ?? '', tenant: vm?.tenant ?? '', source, dynamicJoules: 0, staticJoules: 0, lowJoules: 0, highJoules: 0 };
        shares.set(key, s);
      }
      s.dynamicJoules += dyn;
      s.staticJoules += sta;
      s.lowJoules += dyn + sta - hw;
      s.highJoules += dyn + sta + hw;
    };
    const dt = Math.max(0, iv.durationS);
    const terms = intervalFeatures(iv);
    const staticWeights = staticSplitWeights(iv.vms, ctx.policy, ctx.reservedWeights);
    const byUuid = new Map(iv.vms.map((v) => [v.uuid, v]));
    const unusable = new Set(iv.unusableSources ?? []);
    for (const source of MODEL_SOURCES) {
      const M = Math.max(0, iv.measured[source]);
      if (M === 0 || unusable.has(source)) continue;
      const w = model.sources[source];
      const staticW = this.staticFrom === 'model' ? w.staticW : Math.max(0, ctx.staticPower.watts[source]);
      const S = Math.min(M, staticW * dt);
      const D = M - S;
      if (staticWeights.size === 0) add('unallocated', undefined, source, 0, S, 0);
      else for (const [uuid, f] of staticWeights) add('vm', byUuid.get(uuid), source, 0, S * f, 0);
      const g = termPowers(model, source, terms);
      let tot = 0;
      for (const x of g) tot += x;
      if (!(tot > 0)) {
        add('unallocated', undefined, source, D, 0, 0);
        continue;
      }
      const band = this.z * w.residualRmsW * dt;
      terms.forEach((_t, i) => {
        const f = g[i]! / tot;
        if (!(f > 0)) return;
        if (i < iv.vms.length) add('vm', iv.vms[i], source, D * f, 0, band * f);
        else add('host_overhead', undefined, source, D * f, 0, band * f);
      });
    }
    const gpu = iv.gpus.length > 0 || iv.measured.gpu > 0 ? this.gpu.attributeGpu(iv, ctx) : { shares: [], notes: [] };
    const cpuSide = [...shares.values()].map((s) => ({ ...s, lowJoules: Math.max(0, s.lowJoules) }));
    const withGpu = reconcile([...cpuSide, ...gpu.shares], iv.measured);
    return {
      hostId: iv.hostId,
      seq: iv.seq,
      t0UnixNs: iv.t0UnixNs,
      t1UnixNs: iv.t1UnixNs,
      method: this.name,
      modelVersion: `${model.hardwareClass}@v${model.version}`,
      hardwareClass: iv.hardwareClass,
      note: gpu.notes.join('; '),
      shares: withGpu,
      measured: { ...iv.measured },
    };
  }
}
