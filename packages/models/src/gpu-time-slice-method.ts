/**
 * GPU attribution of live host intervals by learned per-VM signatures (the same model as gpuReplay):
 * per device, E = P_static·dt (+ P_ctx·contexts·dt) + Σ_vm s_vm · busy_vm, busy_vm = smUtil/100 · dt ·
 * presence. Passthrough devices go wholly to their VM. Time-sliced devices: each interval is first
 * observed by the device's online learner (forgetting half-life), then split by the current fit and
 * reconciled so the parts sum exactly to the measurement. Until a device has `minWindows` intervals the
 * split uses SM-utilisation shares and the configured static power, and the result's note says so.
 * Non-GPU sources come from the `base` method (CPU share by default, or the additive model).
 */
import { CpuShareMethod, reconcile, type AttributionContext, type AttributionMethod, type AttributionResult, type AttributionShare, type HostInterval, type IdleSplitPolicy, type VmInterval } from '@wattsplit/attribution';
import { GpuSignatureLearner, splitGpuWindow, type GpuActivityWindow, type GpuSignatureFit, type GpuStaticPolicy } from './gpu-signature.js';

export const GPU_SIGNATURE_METHOD = 'gpu_signature';

export interface GpuTimeSliceMethodOptions {
  /** Method for the rapl and bmc_rest sources (and the GPU shares it is replacing). Default CpuShareMethod. */
  base?: AttributionMethod;
  /** Online learner forgetting half-life, intervals. Default 3600. */
  halfLifeWindows?: number;
  /** Intervals a device needs before its learned fit is used. Default 60. */
  minWindows?: number;
  /** Device idle power with no contexts, W, left unallocated (platform cost). Default 0. */
  noContextIdleW?: number;
}

function gpuPolicy(p: IdleSplitPolicy): GpuStaticPolicy {
  switch (p) {
    case 'reserved':
      return 'by_memory';
    case 'equal':
      return 'equal';
    case 'unallocated':
      return 'unallocated';
  }
}

export class GpuTimeSliceMethod implements AttributionMethod {
  readonly name = GPU_SIGNATURE_METHOD;
  private readonly base: AttributionMethod;
  private readonly learners = new Map<string, GpuSignatureLearner>();
  private readonly halfLife: number;
  private readonly minWindows: number;
  private readonly noContextIdleW: number;

  constructor(opts: GpuTimeSliceMethodOptions = {}) {
    this.base = opts.base ?? new CpuShareMethod();
    this.halfLife = opts.halfLifeWindows ?? 3600;
    this.minWindows = opts.minWindows ?? 60;
    this.noContextIdleW = opts.noContextIdleW ?? 0;
  }

  /** Current fit of one device (for reports), undefined when never seen. */
  fitOf(hostId: string, device: string): GpuSignatureFit | undefined {
    return this.learners.get(`${hostId}|${device}`)?.fit();
  }

  attribute(iv: HostInterval, ctx: AttributionContext): AttributionResult {
    const base = this.base.attribute(iv, ctx);
    if (iv.gpus.length === 0) return { ...base, method: this.name, modelVersion: `${base.method}:${base.modelVersion}` };
    const { shares: gpuShares, notes } = this.attributeGpu(iv, ctx);
    const shares = reconcile([...base.shares.filter((s) => s.source !== 'gpu'), ...gpuShares], iv.measured);
    const note = [base.note, ...notes].filter((x) => x !== '').join('; ');
    return { ...base, method: this.name, modelVersion: `${base.method}:${base.modelVersion}+gpu:${this.halfLife}`, note, shares };
  }

  /** GPU shares only (used by other methods that handle the CPU side themselves). Not reconciled. */
  attributeGpu(iv: HostInterval, ctx: AttributionContext): { shares: AttributionShare[]; notes: string[] } {
    const shares = new Map<string, AttributionShare>();
    const notes: string[] = [];
    const byUuid = new Map(iv.vms.map((v) => [v.uuid, v]));
    const add = (vm: VmInterval | undefined, dyn: number, sta: number, halfWidth: number): void => {
      const key = vm?.uuid ?? '';
      let s = shares.get(key);
      if (!s) {
        s = { kind: vm ? 'vm' : 'unallocated', vmUuid: vm?.uuid ?? '', vmName: vm?.name ?? '', tenant: vm?.tenant ?? '', source: 'gpu', dynamicJoules: 0, staticJoules: 0, lowJoules: 0, highJoules: 0 };
        shares.set(key, s);
      }
      s.dynamicJoules += dyn;
      s.staticJoules += sta;
      const tot = s.dynamicJoules + s.staticJoules;
      s.lowJoules = Math.max(0, s.lowJoules + dyn + sta - halfWidth);
      s.highJoules = Math.max(tot, s.highJoules + dyn + sta + halfWidth);
    };
    const dt = Math.max(0, iv.durationS);
    const configuredStatic = iv.gpus.length > 0 ? Math.max(0, ctx.staticPower.watts.gpu) / iv.gpus.length : 0;
    let covered = 0;
    for (const g of iv.gpus) {
      const J = Math.max(0, g.joules);
      covered += J;
      const attached = iv.vms.flatMap((v) => v.gpus.filter((vg) => vg.device === g.device).map((vg) => ({ v, vg })));
      const owner = attached.find((a) => a.vg.passthrough);
      const key = `${iv.hostId}|${g.device}`;
      if (owner) {
        const sta = Math.min(J, (this.learners.get(key)?.fit().staticW ?? configuredStatic) * dt);
        add(owner.v, J - sta, sta, 0);
        continue;
      }
      const w: GpuActivityWindow = { durationS: dt, joules: J, activity: {}, contexts: {}, usedMemory: {} };
      for (const { v, vg } of attached) {
        const presence = Number.isFinite(v.presence) ? Math.min(1, Math.max(0, v.presence)) : 0;
        const busy = (Math.max(0, Math.min(100, vg.smUtilPct)) / 100) * dt * presence;
        if (busy > 0) w.activity[v.uuid] = (w.activity[v.uuid] ?? 0) + busy;
        if (vg.holdsContext) w.contexts[v.uuid] = Math.max(w.contexts[v.uuid] ?? 0, presence);
        w.usedMemory![v.uuid] = Math.max(w.usedMemory![v.uuid] ?? 0, vg.usedMemoryBytes);
      }
      let learner = this.learners.get(key);
      if (!learner) {
        learner = new GpuSignatureLearner({ halfLifeWindows: this.halfLife, minActivity: 3 });
        this.learners.set(key, learner);
      }
      learner.observe(w);
      let fit: GpuSignatureFit;
      if (learner.windows >= this.minWindows) {
        fit = learner.fit();
      } else {
        // warming up: SM-utilisation shares, configured static power
        const signatures: Record<string, number> = {};
        for (const k of Object.keys(w.activity)) signatures[k] = 1;
        fit = { staticW: configuredStatic, perContextW: 0, signatures, fallbackTenants: [], windows: learner.windows, residualRmsJ: 0 };
        notes.push(`gpu ${g.device}: warming up (${learner.windows}/${this.minWindows} intervals), split by SM utilisation`);
      }
      const sp = splitGpuWindow(w, fit, { policy: gpuPolicy(ctx.policy), noContextIdleW: this.noContextIdleW });
      let dynTot = 0;
      for (const x of Object.values(sp.dynamic)) dynTot += x;
      for (const uuid of new Set([...Object.keys(sp.dynamic), ...Object.keys(sp.static)])) {
        const d = sp.dynamic[uuid] ?? 0;
        // uncertainty: the fit's residual per window, shared in proportion to the VM's dynamic part
        const hw = dynTot > 0 ? (fit.residualRmsJ * d) / dynTot : 0;
        add(byUuid.get(uuid), d, sp.static[uuid] ?? 0, hw);
      }
      if (sp.unallocatedStatic > 0) add(undefined, 0, sp.unallocatedStatic, 0);
    }
    const rest = Math.max(0, iv.measured.gpu - covered);
    if (rest > 0) add(undefined, rest, 0, 0);
    return { shares: [...shares.values()], notes };
  }
}
