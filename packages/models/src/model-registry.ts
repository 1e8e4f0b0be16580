/**
 * Model lifecycle: one additive model per hardware class, versioned, persisted as JSON files
 * (`<dir>/<encoded hardware class>/v<N>.json`: weights + normalisation + metadata + training residual),
 * the latest version of each class kept in memory for the synchronous apply path. Drift: the model's
 * residual on recent intervals against its training residual, reported (and logged) per source.
 */
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostInterval } from '@wattsplit/attribution';
import { normaliseError, silentLogger, WattsplitError, type Logger } from '@wattsplit/wire';
import { checkModelJson, MODEL_SOURCES, predictPowerW, type AdditiveModelJson, type ModelSource } from './additive-model.js';
import type { ModelLookup } from './additive-model-method.js';
import { trainAdditiveModel, type AdditiveTrainOptions } from './additive-trainer.js';
import { isUsableForTraining, selectTrainingIntervals } from './training-selection.js';

export interface ModelRegistryOptions {
  dir: string;
  logger?: Logger;
  /** Options passed to every training run. */
  training?: AdditiveTrainOptions;
  /** Drift when recent residual RMS > driftRatio × training residual RMS (any source). Default 1.5. */
  driftRatio?: number;
}

export interface ModelInfo {
  hardwareClass: string;
  version: number;
  trainedAt: string;
  trainIntervals: number;
  trainSeconds: number;
  residualRmsW: Record<ModelSource, number>;
  file: string;
}

export interface DriftReport {
  hardwareClass: string;
  version: number;
  intervals: number;
  trainingRmsW: Record<ModelSource, number>;
  recentRmsW: Record<ModelSource, number>;
  /** Largest recent / training residual ratio over sources. */
  ratio: number;
  drifted: boolean;
}

const FILE_RE = /^v(\d+)\.json$/;

export class ModelRegistry implements ModelLookup {
  private readonly dir: string;
  private readonly logger: Logger;
  private readonly training: AdditiveTrainOptions;
  private readonly driftRatio: number;
  private readonly latest = new Map<string, AdditiveModelJson>();
  private readonly files = new Map<string, string>();

  constructor(opts: ModelRegistryOptions) {
    this.dir = opts.dir;
    this.logger = opts.logger ?? silentLogger;
    this.training = opts.training ?? {};
    this.driftRatio = opts.driftRatio ?? 1.5;
    if (!(this.driftRatio > 1)) throw new WattsplitError('CONFIG_INVALID', `model registry: driftRatio must be > 1, got ${this.driftRatio}`, { details: { field: 'driftRatio', value: this.driftRatio } });
  }

  private classDir(hardwareClass: string): string {
    return join(this.dir, encodeURIComponent(hardwareClass));
  }

  /** Loads the latest version of every hardware class found in the directory (a missing directory is empty). */
  async load(): Promise<ModelInfo[]> {
    let classes: string[];
    try {
      classes = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw normaliseError(e, 'STORE_UNAVAILABLE');
    }
    const out: ModelInfo[] = [];
    for (const c of classes) {
      const versions = await this.versionsOnDisk(decodeURIComponent(c));
      const v = versions[versions.length - 1];
      if (v === undefined) continue;
      const file = join(this.dir, c, `v${v}.json`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(await readFile(file, 'utf8'));
      } catch (e) {
        throw new WattsplitError('MODEL_NOT_TRAINED', `${file}: cannot read model (${(e as Error).message})`, { cause: e, details: { file } });
      }
      const m = checkModelJson(parsed, file);
      this.latest.set(m.hardwareClass, m);
      this.files.set(m.hardwareClass, file);
      out.push(this.info(m));
    }
    return out;
  }

  private async versionsOnDisk(hardwareClass: string): Promise<number[]> {
    try {
      return (await readdir(this.classDir(hardwareClass)))
        .map((f) => FILE_RE.exec(f)?.[1])
        .filter((x): x is string => x !== undefined)
        .map(Number)
        .sort((a, b) => a - b);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw normaliseError(e, 'STORE_UNAVAILABLE');
    }
  }

  /** Versions stored for a hardware class, ascending. */
  versions(hardwareClass: string): Promise<number[]> {
    return this.versionsOnDisk(hardwareClass);
  }

  /** The latest model of a hardware class (in memory), undefined before the first training (cold start). */
  get(hardwareClass: string): AdditiveModelJson | undefined {
    return this.latest.get(hardwareClass);
  }

  list(): ModelInfo[] {
    return [...this.latest.values()].map((m) => this.info(m));
  }

  private info(m: AdditiveModelJson): ModelInfo {
    return {
      hardwareClass: m.hardwareClass,
      version: m.version,
      trainedAt: m.trainedAt,
      trainIntervals: m.trainIntervals,
      trainSeconds: m.trainSeconds,
      residualRmsW: { rapl: m.sources.rapl.residualRmsW, bmc_rest: m.sources.bmc_rest.residualRmsW },
      file: this.files.get(m.hardwareClass) ?? '',
    };
  }

  /** Trains the next version for a hardware class on the given intervals (of that class), persists and activates it. */
  async train(hardwareClass: string, intervals: readonly HostInterval[]): Promise<ModelInfo> {
    const mine = intervals.filter((iv) => iv.hardwareClass === hardwareClass);
    const versions = await this.versionsOnDisk(hardwareClass);
    const version = (versions[versions.length - 1] ?? 0) + 1;
    const model = await trainAdditiveModel(mine, { ...this.training, hardwareClass, version, logger: this.logger });
    const dir = this.classDir(hardwareClass);
    await mkdir(dir, { recursive: true });
    const file = join(dir, `v${version}.json`);
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(model));
    await rename(tmp, file);
    this.latest.set(hardwareClass, model);
    this.files.set(hardwareClass, file);
    this.logger.info({ hardwareClass, version, file, intervals: model.trainIntervals, seconds: model.trainSeconds }, 'model version stored');
    return this.info(model);
  }

  /** Residual of the current model on recent intervals vs its training residual. Undefined without a model or data. */
  checkDrift(hardwareClass: string, recent: readonly HostInterval[]): DriftReport | undefined {
    const m = this.latest.get(hardwareClass);
    if (!m) return undefined;
    const report = modelDrift(m, recent, this.driftRatio);
    if (report?.drifted) this.logger.warn({ ...report }, 'model drift: recent residual well above training residual');
    return report;
  }
}

/**
 * A model's residual on recent intervals of its class against its training residual, per source; drifted
 * when the largest ratio exceeds `driftRatio`. The recent intervals are selected as the trainer selects
 * its own (usable, and without the VMs starting, stopping or briefly missing that the training residual
 * never saw): otherwise a model would look drifted on the very window it was trained on. Undefined
 * without usable recent intervals.
 */
export function modelDrift(m: AdditiveModelJson, recent: readonly HostInterval[], driftRatio: number): DriftReport | undefined {
  const hardwareClass = m.hardwareClass;
  const usable = recent.filter((iv) => iv.hardwareClass === hardwareClass && iv.durationS > 0 && isUsableForTraining(iv));
  const clean = selectTrainingIntervals(usable).intervals;
  const mine = clean.length >= Math.min(30, usable.length) ? clean : usable;
  if (mine.length === 0) return undefined;
  const trainingRmsW = {} as Record<ModelSource, number>;
  const recentRmsW = {} as Record<ModelSource, number>;
  let ratio = 0;
  for (const s of MODEL_SOURCES) {
    let se = 0;
    let n = 0;
    for (const iv of mine) {
      if ((iv.unusableSources ?? []).includes(s)) continue;
      se += (predictPowerW(m, s, iv) - iv.measured[s] / iv.durationS) ** 2;
      n++;
    }
    trainingRmsW[s] = m.sources[s].residualRmsW;
    recentRmsW[s] = n > 0 ? Math.sqrt(se / n) : 0;
    // a floor of 0.5 % of mean power keeps a near-perfect training fit from flagging noise as drift
    const floor = Math.max(trainingRmsW[s], 0.005 * m.sources[s].meanPowerW, 1e-9);
    ratio = Math.max(ratio, recentRmsW[s] / floor);
  }
  return { hardwareClass, version: m.version, intervals: mine.length, trainingRmsW, recentRmsW, ratio, drifted: ratio > driftRatio };
}
