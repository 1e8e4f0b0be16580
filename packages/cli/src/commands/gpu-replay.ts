/**
 * wattsplit gpu-replay <trace.jsonl> [--json] [--causal [--interval S]] [--window S] [--policy equal|by_memory|unallocated] [--no-context-idle-w W]
 * Attributes a recorded NVML trace (shared/data/gpu format) to its tenants from the observable fields only.
 * Default: one fit over the whole trace splits every window (in-sample). `--causal`: the trace cut into
 * intervals of `--interval` seconds (default 1), each split with what was learned before it, as the
 * collector does live.
 */
import { readFileSync } from 'node:fs';
import { WattsplitError } from '@wattsplit/wire';
import { gpuCausalReplay, gpuReplay, type GpuStaticPolicy } from '@wattsplit/models';
import { parse, strFlag } from '../args.js';

const POLICIES: readonly GpuStaticPolicy[] = ['equal', 'by_memory', 'unallocated'];

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' }, causal: { type: 'boolean' }, interval: { type: 'string' }, window: { type: 'string' }, policy: { type: 'string' }, 'no-context-idle-w': { type: 'string' } }, true);
  if (values.help || positionals.length !== 1) {
    console.log('usage: wattsplit gpu-replay <trace.jsonl> [--json] [--causal [--interval 1]] [--window 2] [--policy equal|by_memory|unallocated] [--no-context-idle-w 0]');
    return values.help ? 0 : 2;
  }
  const file = positionals[0]!;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `cannot read trace ${file}: ${(e as Error).message}`);
  }
  const policy = strFlag(values, 'policy', 'equal') as GpuStaticPolicy;
  if (!POLICIES.includes(policy)) throw new WattsplitError('CONFIG_INVALID', `--policy=${policy}: expected one of ${POLICIES.join(', ')}`);
  const num = (name: string, def: number) => {
    const v = Number(strFlag(values, name, String(def)));
    if (!Number.isFinite(v) || v < 0) throw new WattsplitError('CONFIG_INVALID', `--${name}=${String(values[name])}: expected a number ≥ 0`);
    return v;
  };
  const r = values.causal
    ? gpuCausalReplay(text, { intervalS: num('interval', 1), policy, noContextIdleW: num('no-context-idle-w', 0), source: file })
    : gpuReplay(text, { maxWindowS: num('window', 2), policy, noContextIdleW: num('no-context-idle-w', 0), source: file });
  if (values.json) {
    console.log(JSON.stringify(r));
    return 0;
  }
  const tot = Object.values(r.tenants).reduce((a, t) => a + t.dynamic_joules + t.static_joules, 0);
  console.log(`${file}: ${r.windows.length} ${values.causal ? 'intervals (causal: each split with what was learned before it)' : 'windows (in-sample: one fit over the whole trace)'}, ${r.measured_joules.toFixed(0)} J measured, static policy ${r.static_policy}`);
  console.log(`${'tenant'.padEnd(16)} ${'dynamic J'.padStart(11)} ${'static J'.padStart(10)} ${'share'.padStart(7)}  signature W`);
  for (const [name, t] of Object.entries(r.tenants)) {
    const sig = r.model.signatures_w[name];
    console.log(`${name.padEnd(16)} ${t.dynamic_joules.toFixed(0).padStart(11)} ${t.static_joules.toFixed(0).padStart(10)} ${((100 * (t.dynamic_joules + t.static_joules)) / tot).toFixed(1).padStart(6)}%  ${sig === undefined ? '-' : sig.toFixed(0)}`);
  }
  console.log(`${'(unallocated)'.padEnd(16)} ${''.padStart(11)} ${r.unallocated_static_joules.toFixed(0).padStart(10)}`);
  return 0;
}
