/**
 * `--caps FILE` of `wattsplit collector` and `wattsplit demo`: the live cap watch's caps (JSON), and the
 * advisor's math from @wattsplit/capping handed to the collector (which does not depend on it).
 *
 *   { "defaultHostCapW": 900, "hostCapsW": { "hv-00": 700 }, "groups": [{ "groupId": "rack-1", "kind": "rack",
 *     "capW": 1500, "members": ["hv-00", "hv-01"], "otherW": 40 }], "horizonS": 60, "windowS": 10, "marginW": 0,
 *     "method": "additive_model", "linkGbps": 10, "z": 2 }
 */
import { readFileSync } from 'node:fs';
import * as capping from '@wattsplit/capping';
import type { CapAdvisor, CapWatchConfig } from '@wattsplit/collector';
import { WattsplitError } from '@wattsplit/wire';

export function capWatchFromFile(file: string): { config: CapWatchConfig; advisor: CapAdvisor } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `--caps=${file}: ${(e as Error).message}`);
  }
  const bad = (field: string, value: unknown, why: string): never => {
    throw new WattsplitError('CONFIG_INVALID', `--caps=${file}: ${field}=${JSON.stringify(value)} ${why}`, { details: { field, value } });
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('(top level)', raw, 'must be an object');
  const c = raw as Record<string, unknown>;
  const known = ['defaultHostCapW', 'hostCapsW', 'groups', 'horizonS', 'windowS', 'historyS', 'staleS', 'marginW', 'method', 'linkGbps', 'z', 'publish', 'minIntervalMs'];
  for (const k of Object.keys(c)) if (!known.includes(k)) bad(k, c[k], `is not a cap watch setting (known: ${known.join(', ')})`);
  const positive = (k: string): void => {
    if (c[k] !== undefined && !(typeof c[k] === 'number' && Number.isFinite(c[k]) && c[k] > 0)) bad(k, c[k], 'must be a number > 0');
  };
  for (const k of ['defaultHostCapW', 'windowS', 'historyS', 'staleS', 'linkGbps']) positive(k);
  if (c.horizonS !== undefined && !(Number.isInteger(c.horizonS) && (c.horizonS as number) >= 1 && (c.horizonS as number) <= 3600)) bad('horizonS', c.horizonS, 'must be an integer number of seconds in [1, 3600]');
  if (c.marginW !== undefined && !(typeof c.marginW === 'number' && c.marginW >= 0)) bad('marginW', c.marginW, 'must be a number of watts ≥ 0');
  for (const [h, w] of Object.entries((c.hostCapsW as Record<string, unknown> | undefined) ?? {})) if (!(typeof w === 'number' && w > 0)) bad(`hostCapsW.${h}`, w, 'must be a number of watts > 0');
  if (c.groups !== undefined && !Array.isArray(c.groups)) bad('groups', c.groups, 'must be an array of { groupId, kind, capW, members, otherW? }');
  // The groups' own checks (ids, caps, members, cycles) are the advisor's: run them once now, on a dry input.
  const groups = (c.groups as CapWatchConfig['groups']) ?? [];
  const hostIds = [...new Set(groups.flatMap((g) => g.members ?? []).filter((m) => !groups.some((g) => g.groupId === m)))];
  try {
    capping.planCaps({ hosts: hostIds.map((id) => ({ hostId: id, capW: 1e12, powerW: 0, vms: [] })), groups, linkBps: 1, horizonS: 1 });
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `--caps=${file}: ${(e as Error).message}`, { cause: e });
  }
  const advisor: CapAdvisor = capping;
  return { config: c, advisor };
}
