/** The attribution methods the demo runs side by side, and the training step between warm-up and billing. */
import { CpuShareMethod, type AttributionMethod } from '@wattsplit/attribution';
import { GpuTimeSliceMethod } from '@wattsplit/models';
import type { Store } from '@wattsplit/store';
import type { Logger } from '@wattsplit/wire';

export interface DemoMethods {
  /** Methods beyond cpu_share, which the collector always runs. */
  all: AttributionMethod[];
  /** Method names in report order; the first is the CPU-time baseline. */
  names: string[];
  close(): Promise<void>;
}

export async function buildMethods(_logger: Logger): Promise<DemoMethods> {
  const cpu = new CpuShareMethod();
  const gpu = new GpuTimeSliceMethod({ base: cpu });
  const all: AttributionMethod[] = [gpu];
  return { all, names: [cpu.name, ...all.map((m) => m.name)], close: async () => undefined };
}

/** Trains what can be trained on the stored history; returns a line for the progress log. */
export async function settleModels(_methods: DemoMethods, _store: Store, _logger: Logger): Promise<string> {
  return 'no trainable model configured';
}
