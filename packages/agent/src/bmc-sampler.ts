/**
 * Whole-host (wall) energy from a BmcSource. When the BMC exposes a cumulative energy counter
 * (Redfish EnvironmentMetrics.EnergykWh), it is carried as is (joules). When it only exposes power
 * (Redfish PowerControl.PowerConsumedWatts, IPMI DCMI), the agent integrates it (trapezoid over the
 * monotonic read times) into a cumulative joule counter, and says so once: the result is only as good
 * as the BMC's power averaging (typically a 1 s or longer rolling average). The integrator's state is
 * saved with the agent's state each round, so a restarted agent on the same host boot continues the
 * counter instead of restarting it at 0.
 */
import { EnergySource, EnergyUnit, type BmcSource, type IEnergyCounter, type Logger } from '@wattsplit/wire';
import type { FrameUnderConstruction, RoundContext, Sampler, SamplerStatus } from './sampler.js';

/** The power integrator's state: persisted each round so an agent restart continues the counter. */
export interface BmcIntegratorState {
  j: number;
  w: number;
  monoNs: number;
}

export class BmcSampler implements Sampler {
  readonly name = 'bmc';
  private integratedJ = 0;
  private lastPower: { w: number; monoNs: number } | undefined;
  private saidIntegrating = false;
  private lastError: string | undefined;
  private lastDetail = 'not read yet';

  constructor(
    private readonly source: BmcSource,
    private readonly log: Logger,
  ) {}

  /** The integrator's state, when the agent integrates power (undefined for a BMC energy counter). */
  integrator(): BmcIntegratorState | undefined {
    return this.lastPower ? { j: this.integratedJ, w: this.lastPower.w, monoNs: this.lastPower.monoNs } : undefined;
  }

  /**
   * Continues an integration a previous agent process left (same kernel boot: the same monotonic
   * clock): the counter does not restart, and the gap is integrated as a trapezoid between its last
   * reading and the next one, as between any two readings.
   */
  resume(st: BmcIntegratorState): void {
    if (!(Number.isFinite(st.j) && st.j >= 0 && Number.isFinite(st.w) && st.w >= 0 && st.monoNs > 0)) return;
    this.integratedJ = st.j;
    this.lastPower = { w: st.w, monoNs: st.monoNs };
  }

  async sample(frame: FrameUnderConstruction, ctx: RoundContext): Promise<void> {
    const counter: IEnergyCounter = {
      id: 'bmc',
      source: EnergySource.ENERGY_SOURCE_BMC,
      domain: 'chassis',
      index: -1,
      unit: EnergyUnit.ENERGY_UNIT_JOULE,
      maxRange: 0,
      value: Math.round(this.integratedJ),
    };
    try {
      const r = await this.source.read();
      const now = ctx.monoNs();
      counter.readMonoNs = now;
      if (r.energyJoules !== undefined) {
        counter.value = Math.round(r.energyJoules);
        this.lastDetail = `energy counter ${counter.value} J, ${r.powerWatts} W`;
      } else {
        if (!this.saidIntegrating) {
          this.saidIntegrating = true;
          this.log.info({ source: 'bmc' }, 'BMC exposes power only (no energy counter): the agent integrates PowerConsumedWatts into a cumulative joule counter');
        }
        if (this.lastPower) {
          const dt = (now - this.lastPower.monoNs) / 1e9;
          if (dt > 0) this.integratedJ += ((this.lastPower.w + r.powerWatts) / 2) * dt;
        }
        this.lastPower = { w: r.powerWatts, monoNs: now };
        counter.value = Math.round(this.integratedJ);
        this.lastDetail = `power only, integrated by the agent: ${r.powerWatts} W, ${counter.value} J so far`;
      }
      if (this.lastError) this.log.info({ source: 'bmc' }, 'BMC readable again');
      this.lastError = undefined;
    } catch (e) {
      const msg = `BMC read failed: ${(e as Error).message}`;
      if (this.lastError !== msg) this.log.warn({ code: (e as { code?: string }).code ?? 'SENSOR_READ_FAILED' }, msg);
      this.lastError = msg;
      counter.error = msg;
      // The integration cannot bridge a gap it did not see: restart it from the next reading.
      this.lastPower = undefined;
    }
    frame.counters.push(counter);
  }

  status(): SamplerStatus {
    if (this.lastError) return { name: this.name, state: 'unavailable', detail: this.lastError };
    return { name: this.name, state: 'ok', detail: this.lastDetail };
  }

  async close(): Promise<void> {
    await this.source.close?.();
  }
}
