/**
 * The attribution methods the demo and the collector run beside cpu_share (which the collector always
 * runs), and the training step: the learned additive model is trained per hardware class from the
 * history in the store (host totals only, no per-VM truth), versioned in a model registry directory.
 * Until a hardware class has a model the method falls back to cpu_share and says so in every record.
 */
import { join } from 'node:path';
import { CpuShareMethod, type AttributionMethod, type HostInterval } from '@wattsplit/attribution';
import { AdditiveModelMethod, ModelRegistry } from '@wattsplit/models';
import type { Store } from '@wattsplit/store';
import type { Logger } from '@wattsplit/wire';

export interface DemoMethods {
  /** Methods beyond cpu_share, which the collector always runs. */
  all: AttributionMethod[];
  /** Method names in report order; the first is the CPU-time baseline. */
  names: string[];
  registry: ModelRegistry;
  close(): Promise<void>;
}

export async function buildMethods(dataDir: string, logger: Logger): Promise<DemoMethods> {
  const cpu = new CpuShareMethod();
  const registry = new ModelRegistry({ dir: join(dataDir, 'models'), logger });
  await registry.load();
  const additive = new AdditiveModelMethod({ models: registry, fallback: cpu });
  const all: AttributionMethod[] = [additive];
  return { all, names: [cpu.name, ...all.map((m) => m.name)], registry, close: async () => undefined };
}

/** Trains one model per hardware class on everything the store holds so far; returns a line for the log. */
export async function settleModels(methods: DemoMethods, store: Store, logger: Logger): Promise<string> {
  const history = await store.readHistory({ sinceUnixNs: 0, limit: 1_000_000 });
  const byClass = new Map<string, HostInterval[]>();
  for (const iv of history) {
    const l = byClass.get(iv.hardwareClass) ?? [];
    l.push(iv);
    byClass.set(iv.hardwareClass, l);
  }
  const out: string[] = [];
  for (const [hc, ivs] of byClass) {
    const info = await methods.registry.train(hc, ivs);
    logger.info({ hardwareClass: hc, version: info.version, intervals: info.trainIntervals, seconds: info.trainSeconds, residualRmsW: info.residualRmsW }, 'model trained');
    out.push(`${hc} v${info.version} (${info.trainIntervals} intervals, ${info.trainSeconds.toFixed(1)} s, residual rms ${info.residualRmsW.rapl.toFixed(1)} W)`);
  }
  return out.length ? `trained: ${out.join('; ')}` : 'no history to train on';
}
