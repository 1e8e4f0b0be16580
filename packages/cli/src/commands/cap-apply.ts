/**
 * wattsplit cap-apply PLAN: the actions of a `wattsplit cap-plan --json` plan, as libvirt and cgroup
 * operations, in time order. Dry run (the default) prints them; --execute performs them on the clock
 * the plan runs on (t = 0 when the command starts) and undoes each throttle when the plan says.
 *
 * - CPU quota: libvirt scheduler parameters, `virsh schedinfo VM --live --set global_period=100000
 *   --set global_quota=Q` (the whole domain's CFS bandwidth: libvirt writes cpu.max "Q 100000" in the
 *   domain's cgroup v2 scope, or cpu.cfs_quota_us on v1). The plan's fraction is of the CPU the VM uses
 *   NOW, so Q = fraction × (cores used, measured from `virsh domstats --cpu-total` over one second)
 *   × period. Restored to the value read before (-1 = no limit) when the plan lifts the throttle.
 *   @unraid/libvirt (the repo's binding) has no scheduler-parameter or migration call, hence virsh.
 * - DVFS: the VM's pinned CPUs (`virsh vcpupin VM --live`) get scaling_max_freq = fraction ×
 *   cpuinfo_max_freq (cpufreq sysfs of that host; only on the local host, refused for a VM not pinned
 *   to its own CPUs: the cap would slow its neighbours).
 * - Migration: `virsh migrate --live --persistent --undefinesource [--postcopy] --bandwidth MiB/s VM
 *   DEST_URI`; for post-copy, `virsh migrate-postcopy VM` as soon as the job runs.
 *
 * Hosts are reached by URI: --connect HOST=URI (repeatable), else --uri-template (default
 * qemu+ssh://{host}/system). Exit 0 when every step succeeded, 1 when one failed (the throttles set so
 * far are restored), 2 for bad usage.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { actuationSchedule, type ActuationStep, type CapPlan } from '@wattsplit/capping';
import { WattsplitError } from '@wattsplit/wire';
import { parse, strFlag } from '../args.js';

const HELP = `usage: wattsplit cap-apply PLAN.json [--execute] [--connect HOST=URI ...] [--uri-template 'qemu+ssh://{host}/system'] [--json]
Prints (default) or performs (--execute) the libvirt and cgroup actions of a cap-plan --json plan, in time order,
undoing each throttle when the plan says. PLAN.json is the output of wattsplit cap-plan --json.`;

const PERIOD_US = 100_000;

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one command (argv[0] is the program). The real one spawns; tests may inject another. */
export type CommandRunner = (argv: readonly string[]) => Promise<CommandResult>;

export const spawnRunner: CommandRunner = (argv) =>
  new Promise((resolve) => {
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', (e) => resolve({ code: 127, stdout, stderr: `${stderr}${e.message}` }));
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });

/** One step as the operator reads it: what, and the commands (with placeholders where a value is measured at run time). */
export interface RenderedStep {
  atS: number;
  hostId: string;
  vmUuid: string;
  what: string;
  commands: string[];
  effect: string;
}

export function render(step: ActuationStep, uriOf: (host: string) => string): RenderedStep {
  const c = uriOf(step.hostId);
  const base = { atS: step.atS, hostId: step.hostId, vmUuid: step.vmUuid };
  switch (step.kind) {
    case 'set-cpu-quota':
      return {
        ...base,
        what: `set the CPU quota of ${step.vmUuid} (${step.tenant}) to ${step.fraction} × the CPU it used before the plan (measured at its first throttle): ${step.reason}`,
        commands: [`virsh -c ${c} domstats ${step.vmUuid} --cpu-total   (twice, 1 s apart, before its first throttle: cores it uses)`, `virsh -c ${c} schedinfo ${step.vmUuid} --live --set global_period=${PERIOD_US} --set global_quota=<${step.fraction} × cores used × ${PERIOD_US}>`],
        effect: `cgroup: libvirt writes cpu.max "<quota> ${PERIOD_US}" in the domain's scope (cgroup v2; cpu.cfs_quota_us on v1)`,
      };
    case 'restore-cpu-quota':
      return { ...base, what: `lift the CPU quota of ${step.vmUuid} (${step.tenant}): ${step.reason}`, commands: [`virsh -c ${c} schedinfo ${step.vmUuid} --live --set global_quota=<the value read before the first set, -1 = none>`], effect: 'cgroup: cpu.max back to what it was ("max 100000" when there was no quota)' };
    case 'set-max-frequency':
      return {
        ...base,
        what: `cap the frequency of ${step.vmUuid}'s pinned CPUs (${step.tenant}) at ${step.fraction} × their maximum: ${step.reason}`,
        commands: [`virsh -c ${c} vcpupin ${step.vmUuid} --live   (the CPUs its vCPUs are pinned to)`],
        effect: `cpufreq: /sys/devices/system/cpu/cpuN/cpufreq/scaling_max_freq ← ${step.fraction} × cpuinfo_max_freq for each of those CPUs`,
      };
    case 'restore-max-frequency':
      return { ...base, what: `lift the frequency cap of ${step.vmUuid}'s CPUs (${step.tenant})`, commands: [], effect: 'cpufreq: scaling_max_freq ← the value read before' };
    case 'migrate': {
      const a = step.action;
      const mib = Math.max(1, Math.floor(a.bandwidthBps / 2 ** 20));
      const cmds = [`virsh -c ${c} migrate --live --persistent --undefinesource${a.mode === 'post-copy' ? ' --postcopy' : ''} --bandwidth ${mib} ${a.vmUuid} ${uriOf(a.toHostId)}`];
      if (a.mode === 'post-copy') cmds.push(`virsh -c ${c} migrate-postcopy ${a.vmUuid}   (as soon as the job runs: switch to post-copy)`);
      return { ...base, what: `migrate ${a.vmUuid} (${a.tenant}, ${a.vmPowerW.toFixed(0)} W) ${a.fromHostId} → ${a.toHostId} by ${a.mode} at ${mib} MiB/s; switchover expected at t=${a.switchoverS}s, done t=${a.endS}s`, commands: cmds, effect: `${a.fromHostId} +${a.sourceExtraW} W and ${a.toHostId} +${a.destinationExtraW} W while it runs (the plan's estimate)` };
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Performs a schedule with virsh (and cpufreq sysfs on this host). State: what each throttle replaced, to undo it. */
export class VirshActuator {
  private readonly savedQuota = new Map<string, { host: string; quota: string }>();
  private readonly savedFreq = new Map<string, { path: string; khz: string }[]>();
  private readonly usedCores = new Map<string, number>();

  constructor(
    private readonly run: CommandRunner,
    private readonly uriOf: (host: string) => string,
    private readonly log: (line: string) => void,
  ) {}

  private async virsh(host: string, args: string[]): Promise<string> {
    const r = await this.run(['virsh', '-c', this.uriOf(host), ...args]);
    if (r.code !== 0) throw new WattsplitError('CAP_ACTION_FAILED', `virsh ${args.join(' ')} on ${host}: ${r.stderr.trim() || `exit ${r.code}`}`, { retriable: true });
    return r.stdout;
  }

  /** Cores the domain uses now: cpu.time over one second. */
  async measureCores(host: string, vm: string): Promise<number> {
    const read = async (): Promise<[number, number]> => {
      const out = await this.virsh(host, ['domstats', vm, '--cpu-total']);
      const ns = /cpu\.time=(\d+)/.exec(out)?.[1];
      if (!ns) throw new WattsplitError('CAP_ACTION_FAILED', `virsh domstats ${vm}: no cpu.time in ${JSON.stringify(out.trim())}`);
      return [Number(ns), performance.now()];
    };
    const [a, ta] = await read();
    await sleep(1000);
    const [b, tb] = await read();
    const cores = (b - a) / 1e6 / (tb - ta);
    this.usedCores.set(vm, cores);
    return cores;
  }

  async apply(step: ActuationStep): Promise<string> {
    switch (step.kind) {
      case 'set-cpu-quota': {
        if (!this.savedQuota.has(step.vmUuid)) {
          const info = await this.virsh(step.hostId, ['schedinfo', step.vmUuid, '--live']);
          this.savedQuota.set(step.vmUuid, { host: step.hostId, quota: /global_quota\s*:\s*(-?\d+)/.exec(info)?.[1] ?? '-1' });
        }
        const cores = this.usedCores.get(step.vmUuid) ?? (await this.measureCores(step.hostId, step.vmUuid));
        // libvirt refuses quotas under 1000 µs; a plan asking for less gets the least there is.
        const quota = Math.max(1000, Math.floor(step.fraction * cores * PERIOD_US));
        await this.virsh(step.hostId, ['schedinfo', step.vmUuid, '--live', '--set', `global_period=${PERIOD_US}`, '--set', `global_quota=${quota}`]);
        return `global_quota=${quota} µs per ${PERIOD_US} µs (${step.fraction} × ${cores.toFixed(3)} cores)`;
      }
      case 'restore-cpu-quota': {
        const saved = this.savedQuota.get(step.vmUuid);
        const quota = saved?.quota ?? '-1';
        await this.virsh(step.hostId, ['schedinfo', step.vmUuid, '--live', '--set', `global_quota=${quota}`]);
        this.savedQuota.delete(step.vmUuid);
        return `global_quota=${quota}`;
      }
      case 'set-max-frequency': {
        if (!/^qemu:\/\/\/system$|^qemu:\/\/\/session$/.test(this.uriOf(step.hostId))) throw new WattsplitError('CONFIG_INVALID', `DVFS on ${step.hostId}: cpufreq is written on the host itself; run cap-apply there (--connect ${step.hostId}=qemu:///system)`);
        const pins = await this.virsh(step.hostId, ['vcpupin', step.vmUuid, '--live']);
        const cpus = [...new Set(pins.split('\n').flatMap((l) => (/^\s*\d+\s+(\S+)/.exec(l)?.[1] ?? '').split(',')).flatMap(expandRange))];
        const all = Number((await this.run(['nproc', '--all'])).stdout.trim());
        if (cpus.length === 0 || cpus.length >= all) throw new WattsplitError('CONFIG_INVALID', `DVFS on ${step.vmUuid}: its vCPUs are not pinned to their own CPUs (affinity ${JSON.stringify(pins.trim())}); a frequency cap would slow its neighbours`);
        const saved: { path: string; khz: string }[] = [];
        for (const cpu of cpus) {
          const dir = `/sys/devices/system/cpu/cpu${cpu}/cpufreq`;
          const max = Number(readFileSync(`${dir}/cpuinfo_max_freq`, 'utf8'));
          saved.push({ path: `${dir}/scaling_max_freq`, khz: readFileSync(`${dir}/scaling_max_freq`, 'utf8').trim() });
          writeFileSync(`${dir}/scaling_max_freq`, String(Math.floor(step.fraction * max)));
        }
        if (!this.savedFreq.has(step.vmUuid)) this.savedFreq.set(step.vmUuid, saved);
        return `scaling_max_freq on CPUs ${cpus.join(',')}`;
      }
      case 'restore-max-frequency': {
        for (const s of this.savedFreq.get(step.vmUuid) ?? []) writeFileSync(s.path, s.khz);
        this.savedFreq.delete(step.vmUuid);
        return 'scaling_max_freq restored';
      }
      case 'migrate': {
        const a = step.action;
        const mib = Math.max(1, Math.floor(a.bandwidthBps / 2 ** 20));
        const job = this.virsh(a.fromHostId, ['migrate', '--live', '--persistent', '--undefinesource', ...(a.mode === 'post-copy' ? ['--postcopy'] : []), '--bandwidth', String(mib), a.vmUuid, this.uriOf(a.toHostId)]);
        if (a.mode === 'post-copy') {
          // Switch as soon as the job is running (migrate-postcopy fails before it started).
          for (let i = 0; i < 50; i++) {
            await sleep(100);
            const r = await this.run(['virsh', '-c', this.uriOf(a.fromHostId), 'migrate-postcopy', a.vmUuid]);
            if (r.code === 0) break;
          }
        }
        await job;
        return `migrated to ${a.toHostId} (${a.mode}, ${mib} MiB/s)`;
      }
    }
  }

  /** Undo every throttle still in place (after a failure or an interrupt). */
  async undoAll(): Promise<void> {
    for (const [vm, s] of this.savedQuota) await this.virsh(s.host, ['schedinfo', vm, '--live', '--set', `global_quota=${s.quota}`]).catch((e: Error) => this.log(`undo ${vm}: ${e.message}`));
    this.savedQuota.clear();
    for (const [, list] of this.savedFreq) for (const s of list) writeFileSync(s.path, s.khz);
    this.savedFreq.clear();
  }
}

function expandRange(s: string): number[] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s.trim());
  if (!m) return [];
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { execute: { type: 'boolean' }, connect: { type: 'string', multiple: true }, 'uri-template': { type: 'string' }, json: { type: 'boolean' } }, true);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new WattsplitError('CONFIG_INVALID', 'cap-apply takes one PLAN.json (the output of wattsplit cap-plan --json)');
  let plan: CapPlan;
  try {
    plan = JSON.parse(readFileSync(file, 'utf8')) as CapPlan;
  } catch (e) {
    throw new WattsplitError('CONFIG_INVALID', `${file}: ${(e as Error).message}`);
  }
  if (!Array.isArray(plan.actions)) throw new WattsplitError('CONFIG_INVALID', `${file}: no "actions" array: not a cap-plan --json plan`);
  for (const [i, a] of plan.actions.entries()) {
    if (a.kind !== 'throttle' && a.kind !== 'migrate') throw new WattsplitError('CONFIG_INVALID', `${file}: actions[${i}].kind=${JSON.stringify((a as { kind: unknown }).kind)} is neither throttle nor migrate`);
  }
  const connect = new Map<string, string>();
  for (const c of (values.connect as unknown as string[] | undefined) ?? []) {
    const eq = c.indexOf('=');
    if (eq <= 0) throw new WattsplitError('CONFIG_INVALID', `--connect=${c}: expected HOST=URI`);
    connect.set(c.slice(0, eq), c.slice(eq + 1));
  }
  const template = strFlag(values, 'uri-template', 'qemu+ssh://{host}/system');
  const uriOf = (host: string): string => connect.get(host) ?? template.replaceAll('{host}', host);
  const steps = actuationSchedule(plan.actions);
  const rendered = steps.map((s) => render(s, uriOf));

  if (!values.execute) {
    if (values.json) console.log(JSON.stringify({ dryRun: true, steps: rendered }));
    else {
      console.log(`dry run: ${steps.length} steps (nothing is changed; --execute performs them)`);
      for (const r of rendered) {
        console.log(`t=${r.atS}s  ${r.hostId}  ${r.what}`);
        for (const c of r.commands) console.log(`    ${c}`);
        console.log(`    ${r.effect}`);
      }
    }
    return 0;
  }

  const out = (line: string): void => console.log(line);
  const act = new VirshActuator(spawnRunner, uriOf, out);
  // Measure the CPU each quota'd VM uses before the clock starts (the plan's fractions are of that).
  for (const s of steps) if (s.kind === 'set-cpu-quota' && s.atS === 0) await act.measureCores(s.hostId, s.vmUuid);
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const t0 = performance.now();
  const results: { atS: number; kind: string; vmUuid: string; ok: boolean; detail: string }[] = [];
  let failed = false;
  try {
    for (const s of steps) {
      while (!interrupted && performance.now() - t0 < s.atS * 1000) await sleep(Math.min(200, s.atS * 1000 - (performance.now() - t0)));
      if (interrupted) throw new WattsplitError('CAP_ACTION_FAILED', 'interrupted: undoing the throttles set so far');
      const at = ((performance.now() - t0) / 1000).toFixed(2);
      try {
        const detail = await act.apply(s);
        results.push({ atS: s.atS, kind: s.kind, vmUuid: s.vmUuid, ok: true, detail });
        if (!values.json) out(`t=${at}s  ${s.hostId}  ${s.kind} ${s.vmUuid}: ${detail}`);
      } catch (e) {
        results.push({ atS: s.atS, kind: s.kind, vmUuid: s.vmUuid, ok: false, detail: (e as Error).message });
        if (!values.json) out(`t=${at}s  ${s.hostId}  ${s.kind} ${s.vmUuid} FAILED: ${(e as Error).message}`);
        throw e;
      }
    }
  } catch (e) {
    failed = true;
    await act.undoAll();
    if (!values.json) out(`stopped: ${(e as Error).message}; throttles set so far were restored`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (values.json) console.log(JSON.stringify({ dryRun: false, steps: results, ok: !failed }));
  return failed ? 1 : 0;
}
