/**
 * ModelCatalog: the models every replica applies, read from the store (model_activations +
 * model_versions) and kept in memory for the synchronous apply path (ModelLookup).
 *
 * Which version attributes an interval: among the class's activations whose `effective_from_ns` is at or
 * before the interval's end, the latest decision (highest seq). So the switch happens on an interval
 * boundary, one interval is never split between two versions, every replica picks the same version for
 * the same interval, and a replayed interval gets the version it got the first time. `refresh()` is
 * cheap when nothing changed (one max(seq) query) and loads only artefacts it has not seen.
 */
import { checkModelJson, type AdditiveModelJson, type ModelLookup } from '@wattsplit/models';
import type { ModelActivation, ModelStore } from '@wattsplit/store';
import { silentLogger, type Logger } from '@wattsplit/wire';

interface InForce {
  activation: ModelActivation;
  model: AdditiveModelJson;
}

export interface CatalogEntry {
  hardwareClass: string;
  /** The version of the latest activation (in force now, or from its effective time on). */
  version: number;
  modelId: string;
  effectiveFromNs: number;
  action: string;
  trainedAt: string;
  trainIntervals: number;
  residualRmsW: { rapl: number; bmc_rest: number };
}

export class ModelCatalog implements ModelLookup {
  /** Per class, activations with their model, ascending by seq. */
  private byClass = new Map<string, InForce[]>();
  private readonly artefacts = new Map<string, AdditiveModelJson>();
  private lastSeq = -1;
  private readonly log: Logger;

  constructor(
    private readonly models: ModelStore,
    logger: Logger = silentLogger,
  ) {
    this.log = logger.child({ component: 'model-catalog' });
  }

  get(hardwareClass: string, atUnixNs?: number): AdditiveModelJson | undefined {
    const list = this.byClass.get(hardwareClass);
    if (!list) return undefined;
    const at = atUnixNs ?? Number.POSITIVE_INFINITY;
    for (let i = list.length - 1; i >= 0; i--) {
      const x = list[i]!;
      if (x.activation.effectiveFromNs <= at) return x.model;
    }
    return undefined;
  }

  /** The latest activation of each class (what `models list` and the REST API show). */
  entries(): CatalogEntry[] {
    const out: CatalogEntry[] = [];
    for (const [hc, list] of this.byClass) {
      const x = list[list.length - 1];
      if (!x) continue;
      out.push({
        hardwareClass: hc,
        version: x.activation.version,
        modelId: x.activation.modelId,
        effectiveFromNs: x.activation.effectiveFromNs,
        action: x.activation.action,
        trainedAt: x.model.trainedAt,
        trainIntervals: x.model.trainIntervals,
        residualRmsW: { rapl: x.model.sources.rapl.residualRmsW, bmc_rest: x.model.sources.bmc_rest.residualRmsW },
      });
    }
    return out.sort((a, b) => a.hardwareClass.localeCompare(b.hardwareClass));
  }

  /** Refreshes run one after another: two at once (a training's and the timer's) both saw the new activation. */
  private refreshChain: Promise<unknown> = Promise.resolve();

  /** Reads new activations from the store; true when something changed. Throws like a store query. */
  refresh(): Promise<boolean> {
    const next = this.refreshChain.then(() => this.refreshOnce());
    this.refreshChain = next.catch(() => undefined);
    return next;
  }

  private async refreshOnce(): Promise<boolean> {
    const acts = await this.models.activations();
    const top = acts.reduce((m, a) => Math.max(m, a.seq), 0);
    if (top === this.lastSeq) return false;
    const next = new Map<string, InForce[]>();
    for (const a of acts) {
      const model = await this.artefact(a);
      if (!model) continue;
      const list = next.get(a.hardwareClass) ?? [];
      list.push({ activation: a, model });
      next.set(a.hardwareClass, list);
    }
    this.byClass = next;
    this.lastSeq = top;
    return true;
  }

  private async artefact(a: ModelActivation): Promise<AdditiveModelJson | undefined> {
    const key = `${a.hardwareClass}\u0000${a.version}\u0000${a.modelId}`;
    const have = this.artefacts.get(key);
    if (have) return have;
    const row = await this.models.loadVersion(a.hardwareClass, a.version, a.modelId || undefined);
    if (!row) {
      this.log.error({ hardwareClass: a.hardwareClass, version: a.version, modelId: a.modelId }, `activation of ${a.hardwareClass} v${a.version} names an artefact the store does not have; ignored`);
      return undefined;
    }
    let model: AdditiveModelJson;
    try {
      model = checkModelJson(JSON.parse(row.modelJson) as unknown, `model_versions ${a.hardwareClass} v${a.version}`);
    } catch (e) {
      this.log.error({ hardwareClass: a.hardwareClass, version: a.version, err: (e as Error).message }, `model ${a.hardwareClass} v${a.version} is unreadable; ignored`);
      return undefined;
    }
    this.artefacts.set(key, model);
    return model;
  }
}
