/**
 * Whole-host (wall) energy from a BmcSource. When the BMC exposes a cumulative energy counter
 * (Redfish EnvironmentMetrics.EnergykWh), it is carried as is (joules). When it only exposes power
 * (Redfish PowerControl.PowerConsumedWatts, IPMI DCMI), the agent integrates it (trapezoid over the
 * monotonic read times) into a cumulative joule counter, and says so once: the result is only as good
 * as the BMC's power averaging (typically a 1 s or longer rolling average).
 */
import { EnergySource, EnergyUnit, type BmcSource, type IEnergyCounter, type Logger } from '@wattsplit/wire';
import type { FrameUnderConstruction, RoundContext, Sampler, SamplerStatus } from './sampler.js';

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
