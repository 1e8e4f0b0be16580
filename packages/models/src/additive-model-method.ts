/**
 * "additive_model": splits each host interval's measured energy with the learned additive host model.
 *
 * Per CPU-side source s (rapl, bmc_rest) with measured M over dt seconds, by default (`online`) through the
 * host's CpuSignatureFilter (cpu-signature-filter.ts), which tracks the host's own static power and each
 * VM's multiplier on the trained model online:
 *   static  S = min(M, P_static · dt), split by the idle policy (presence-weighted, as cpu_share does);
 *           P_static is the filter's estimate for the host (`staticFrom: 'model'`, default) or the context's;
 *   dynamic D = M − S, split in proportion to each term's m_t · cpu_t + Σ_k c_k · io_t,k (VMs; CPU time
 *           outside VMs → host_overhead); every term with CPU time gets a floored share.
 * With `online: false`: the trained model alone (its static power of the host, each term's g_s).
 * GPU: the learned signature split (GpuTimeSliceMethod). `observe` feeds the GPU learners and the filter
 * (after the interval is attributed: causal; an interval at or below a host's last observed seq is not
 * learned again); `exportStates` / `importState` move both (`gpu_signature`, `cpu_signature`). Ends with
 * `reconcile`, so every source sums exactly to its measurement. Uncertainty: ± z (default 1.645, a 90 %
 * interval) × each share's sd from the filter's covariance × the calibration `sdScale` (online: by whether the
 * interval's VMs carry perf counters, fitted on development fleets so that a tenant's total over a billing period,
 * its rows summed linearly, is covered about 90 % of the time), or z × the model's residual RMS × dt shared in
 * proportion to the dynamic parts (offline).
 * No model for the interval's hardware class (cold start): the fallback (cpu_share) result, with
 * `note` saying so.
 */
import { CpuShareMethod, reconcile, staticSplitWeights, type AttributionContext, type AttributionMethod, type AttributionResult, type AttributionShare, type EntityKind, type HostInterval, type LearnerHostState, type VmInterval } from '@wattsplit/attribution';
import { WattsplitError } from '@wattsplit/wire';
import { intervalFeatures, MODEL_SOURCES, staticPowerW, termPowers, type AdditiveModelJson, type VmFeatures } from './additive-model.js';
import { CPU_SIGNATURE_LEARNER, CpuSignatureFilter, type CpuSignatureFilterOptions } from './cpu-signature-filter.js';
import { GPU_SIGNATURE_METHOD, GpuTimeSliceMethod, type GpuTimeSliceHostState } from './gpu-time-slice-method.js';

export const ADDITIVE_MODEL_METHOD = 'additive_model';

/** Factors on the online filter's sd in the stored half-widths, by whether the interval's VMs carry perf counters. */
export interface OnlineSdScale {
  withPerf: number;
  withoutPerf: number;
}

/**
 * The online band's calibration (AdditiveModelMethodOptions.sdScale), fitted on development fleets only so that a
 * tenant's billed total over a billing period (rows summed linearly, as the rollups and bills sum them) falls
 * inside its 90 % interval about 90 % of the time. With perf counters the filter's sd overstates the error of a
 * tenant's total (the multipliers' prior sd is the no-perf one, the trained model with perf follows the VMs
 * closer); without them the development fleets' tenant totals are already covered about 90 % of the time.
 */
export const ONLINE_SD_SCALE: Readonly<OnlineSdScale> = Object.freeze({ withPerf: 0.6, withoutPerf: 1 });

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
  /** Width of the uncertainty interval in standard deviations. Default 1.645 (90 %). */
  z?: number;
  /**
   * Calibration of the online filter's standard deviations in the stored rows: each row's half-width is
   * z × scale × its share's sd, the scale `withPerf` in an interval where a VM carries perf counters, `withoutPerf`
   * where none does. Default ONLINE_SD_SCALE (fitted on development fleets only: docs/accuracy-method.md, "Issue 12,
   * eighth pass"); { withPerf: 1, withoutPerf: 1 }: the filter's sd as it is. The split itself does not change.
   * Not used with `online: false` (the trained model's residual band).
   */
  sdScale?: OnlineSdScale;
  /**
   * Track each host's static power and each VM's signature online (cpu-signature-filter.ts) on top of the
   * trained model: `true` (default) with the filter's defaults, options to tune it, `false` for the trained
   * model alone (its own static power per trained host, per-VM coefficients fixed at training).
   */
  online?: boolean | CpuSignatureFilterOptions;
}

export class AdditiveModelMethod implements AttributionMethod {
  readonly name = ADDITIVE_MODEL_METHOD;
  private readonly models: ModelLookup;
  private readonly fallback: AttributionMethod;
  private readonly gpu: GpuTimeSliceMethod;
  private readonly staticFrom: 'model' | 'context';
  private readonly z: number;
  private readonly sdScale: OnlineSdScale;
  /** The online CPU-side learner; undefined with `online: false`. */
  readonly filter: CpuSignatureFilter | undefined;
  /** The terms of the interval attributed last (its `observe` right after reuses them). */
  private lastTerms: { iv: HostInterval; terms: VmFeatures[] } | undefined;

  constructor(opts: AdditiveModelMethodOptions) {
    this.models = opts.models;
    this.fallback = opts.fallback ?? new CpuShareMethod();
    this.gpu = opts.gpu ?? new GpuTimeSliceMethod({ base: this.fallback });
    this.staticFrom = opts.staticFrom ?? 'model';
    this.z = opts.z ?? 1.645;
    this.sdScale = { ...(opts.sdScale ?? ONLINE_SD_SCALE) };
    for (const k of ['withPerf', 'withoutPerf'] as const) {
      const x = this.sdScale[k];
      if (!(Number.isFinite(x) && x > 0)) throw new WattsplitError('CONFIG_INVALID', `${ADDITIVE_MODEL_METHOD}: sdScale.${k} must be a number > 0, got ${JSON.stringify(x)}`, { details: { field: `sdScale.${k}`, value: String(x) } });
    }
    const online = opts.online ?? true;
    this.filter = online === false ? undefined : new CpuSignatureFilter(online === true ? {} : online);
  }

  /** Feeds the learners (the collector calls it after the interval is attributed): GPU signatures, CPU-side filter. */
  observe(iv: HostInterval): void {
    this.gpu.observe(iv);
    if (this.filter) {
      const last = this.filter.lastSeq(iv.hostId);
      if (last !== undefined && iv.seq <= last) return;
      const model = this.models.get(iv.hardwareClass, iv.t1UnixNs);
      const memo = this.lastTerms;
      this.filter.observe(iv, model, !model ? [] : memo?.iv === iv ? memo.terms : intervalFeatures(iv));
    }
    this.lastTerms = undefined;
  }

  /** The GPU learners' state for the host (learner `gpu_signature`). */
  exportState(hostId: string): GpuTimeSliceHostState | undefined {
    return this.gpu.exportState(hostId);
  }

  /** Every learner's state for the host: GPU signatures and the CPU-side filter (`cpu_signature`). */
  exportStates(hostId: string): LearnerHostState[] {
    const out: LearnerHostState[] = [];
    const g = this.gpu.exportState(hostId);
    if (g) out.push(g);
    const c = this.filter?.exportState(hostId);
    if (c) out.push(c);
    return out;
  }

  /** Restores a state `exportStates` wrote, by its learner name; throws LEARNER_STATE_INVALID. */
  importState(hostId: string, state: unknown): void {
    let learner: unknown;
    try {
      const o: unknown = typeof state === 'string' ? JSON.parse(state) : state;
      learner = typeof o === 'object' && o !== null ? (o as { learner?: unknown }).learner : undefined;
    } catch {
      learner = undefined;
    }
    if (learner === CPU_SIGNATURE_LEARNER) {
      if (!this.filter) throw new WattsplitError('LEARNER_STATE_INVALID', `${CPU_SIGNATURE_LEARNER} state of host ${JSON.stringify(hostId)}: this ${this.name} method runs without the online filter`, { details: { field: 'learner' } });
      this.filter.importState(hostId, state);
      return;
    }
    if (learner !== GPU_SIGNATURE_METHOD && learner !== undefined && this.filter) {
      throw new WattsplitError('LEARNER_STATE_INVALID', `${this.name} state of host ${JSON.stringify(hostId)}: field "learner" must be "${GPU_SIGNATURE_METHOD}" or "${CPU_SIGNATURE_LEARNER}", got ${JSON.stringify(learner)}`, { details: { field: 'learner', value: JSON.stringify(learner) ?? 'undefined' } });
    }
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
    this.lastTerms = { iv, terms };
    const staticWeights = staticSplitWeights(iv.vms, ctx.policy, ctx.reservedWeights);
    const byUuid = new Map(iv.vms.map((v) => [v.uuid, v]));
    const unusable = new Set(iv.unusableSources ?? []);
    const staticFrac = new Float64Array(terms.length);
    iv.vms.forEach((v, i) => (staticFrac[i] = staticWeights.get(v.uuid) ?? 0));
    for (const source of MODEL_SOURCES) {
      const M = Math.max(0, iv.measured[source]);
      if (M === 0 || unusable.has(source)) continue;
      const w = model.sources[source];
      if (this.filter) {
        const sp = this.filter.split(iv, model, source, terms, staticFrac, this.staticFrom === 'model' ? undefined : Math.max(0, ctx.staticPower.watts[source]));
        if (staticWeights.size === 0) add('unallocated', undefined, source, 0, sp.staticJ, 0);
        else for (const [uuid, f] of staticWeights) add('vm', byUuid.get(uuid), source, 0, sp.staticJ * f, 0);
        let any = false;
        const zs = this.z * (sp.perfSeen ? this.sdScale.withPerf : this.sdScale.withoutPerf);
        terms.forEach((_t, i) => {
          const dyn = sp.dynamicJ[i]!;
          const band = zs * sp.sdJ[i]!;
          if (!(dyn > 0) && !(band > 0)) return;
          any = true;
          if (i < iv.vms.length) add('vm', iv.vms[i], source, dyn, 0, band);
          else add('host_overhead', undefined, source, dyn, 0, band);
        });
        if (!any) add('unallocated', undefined, source, M - sp.staticJ, 0, 0);
        continue;
      }
      const staticW = this.staticFrom === 'model' ? staticPowerW(model, source, iv.hostId) : Math.max(0, ctx.staticPower.watts[source]);
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
