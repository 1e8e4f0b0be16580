/**
 * Live migrations and power caps, simulated in 10 ms ticks on hosts with a fixed number of cores, so
 * that what the capping advisor assumes can be checked against mechanisms rather than restated:
 *
 * - Host power = idleW + coreW × f^α × (busy cores) + Σ VM staticW, busy cores = min(cores, demand).
 *   Demand = each VM's vCPU work (its `cores`, under its CPU quota) + the migration threads' CPU.
 * - A migration's copy costs CPU on both hosts in proportion to its throughput (`copyCoresPerGBps`:
 *   page scanning, dirty tracking, TCP). On a host with idle cores that is extra power (≈ 12 W at 1 GB/s
 *   with the defaults). On a CPU-SATURATED host the copy thread takes cores the guests were using: the
 *   power does not rise, the guests slow down, and the migrating VM's power stays on the host until the
 *   switchover (research finding: pre-copy on a saturated source adds no power but holds it up).
 * - Pre-copy (Clark et al.): round 0 sends all memory, each next round what the guest dirtied during
 *   the previous one (at most its working set: rewriting a page dirties it once); the guest's dirtying
 *   follows its progress, so a throttled or slowed guest dirties less. When the rest fits the downtime
 *   limit the guest pauses for the final copy and resumes on the destination. Dirty logging costs the
 *   guest a write-protect fault per page it first writes in a round (`wpFaultS`).
 * - Post-copy: the guest stops, its device state goes over (`deviceStateS`, 0.12 s) and it runs on the
 *   destination at once: the source loses its power within that time. Its memory is pushed in the
 *   background at the link rate; every access to a page not there yet stalls the guest for
 *   `remoteFaultS` while the page is fetched. A guest touches its working set at its dirty rate (a
 *   write-intensive sweep) and other, cold pages at `coldPagesPerS`, so a small working set loses little
 *   and a large write-intensive one loses most of its time until its working set has arrived.
 *   `remoteFaultS` and `coldPagesPerS` are CALIBRATED so that a 4 GiB guest on 10 GbE gives the
 *   research figures (≈ 10 % slowdown with a small working set, ≈ 68 % with a 200 MB write-intensive
 *   one); the tests check that the mechanism gives them, and how they move with the working set.
 * - Throttles: a CPU quota (fraction of the VM's cores) or a DVFS frequency (its busy cores at f, dynamic
 *   power × f^α, work × f), each over [fromS, untilS).
 *
 * Pure and deterministic; no telemetry frames (sim-host.ts does that for the attribution pipeline).
 */
export interface MigSimVm {
  uuid: string;
  /** vCPU work it wants, in cores. */
  cores: number;
  /** Power that does not scale with its CPU (memory, devices, its share of static power), W. */
  staticW: number;
  memoryBytes: number;
  /** Bytes it rewrites per second at full speed. */
  dirtyRateBps: number;
  /** Bytes it keeps touching (its rewritten set); default min(memory, one second of dirtying). */
  workingSetBytes?: number;
}

export interface MigSimHost {
  hostId: string;
  cores: number;
  idleW: number;
  /** Dynamic power of one busy core at full frequency, W. */
  coreW: number;
  vms: MigSimVm[];
}

export type MigSimAction =
  | { kind: 'throttle'; hostId: string; vmUuid: string; fromS: number; untilS: number | null; method: 'cpu-quota' | 'dvfs'; cpuQuotaFraction: number; frequencyFraction?: number }
  | { kind: 'migrate'; vmUuid: string; fromHostId: string; toHostId: string; startS: number; mode: 'pre-copy' | 'pre-copy-throttled' | 'post-copy'; bandwidthBps: number };

export interface MigSimParams {
  tickS: number;
  setupS: number;
  linkEfficiency: number;
  copyCoresPerGBps: number;
  downtimeLimitS: number;
  maxRounds: number;
  deviceStateS: number;
  wpFaultS: number;
  remoteFaultS: number;
  coldPagesPerS: number;
  /** Dynamic power ∝ f^α under DVFS. */
  dvfsExponent: number;
}

export const DEFAULT_MIG_SIM: Readonly<MigSimParams> = Object.freeze({
  tickS: 0.01,
  setupS: 2,
  linkEfficiency: 0.8,
  copyCoresPerGBps: 1.5,
  downtimeLimitS: 0.3,
  maxRounds: 30,
  deviceStateS: 0.12,
  wpFaultS: 1e-6,
  remoteFaultS: 340e-6,
  coldPagesPerS: 320,
  dvfsExponent: 2,
});

const PAGE = 4096;

export interface MigSimMigration {
  vmUuid: string;
  mode: Extract<MigSimAction, { kind: 'migrate' }>['mode'];
  startS: number;
  /** The guest stopped on the source (its power leaves the source here). */
  stopS: number;
  /** The guest runs on the destination. */
  resumeS: number;
  /** The last byte arrived; the copy's CPU stops. */
  endS: number;
  rounds: number;
  transferredBytes: number;
  /** Work the migrating VM lost between start and end, as a fraction of that time (downtime included). */
  slowdown: number;
  /** Post-copy only: lost work over [resumeS, endS). */
  postCopySlowdown: number;
}

export interface MigSimResult {
  /** Mean power of each host in each second [t, t+1). */
  powerW: Map<string, number[]>;
  /** Power of each host in each tick. */
  tickPowerW: Map<string, Float64Array>;
  migrations: MigSimMigration[];
  /** Seconds of work each VM lost (wanted − done, in units of its full speed). */
  lostWorkS: Map<string, number>;
}

interface VmState {
  vm: MigSimVm;
  host: string;
  /** Running, paused (stop-and-copy / device state) or gone. */
  paused: boolean;
  lost: number;
}

interface MigState {
  a: Extract<MigSimAction, { kind: 'migrate' }>;
  phase: 'wait' | 'setup' | 'copy' | 'stop-copy' | 'device' | 'push' | 'done';
  left: number;
  dirty: number;
  rounds: number;
  sent: number;
  stopS: number;
  resumeS: number;
  endS: number;
  lostAtStart: number;
  lostAtResume: number;
  lostAtEnd: number;
  /** Post-copy: working-set and cold pages not on the destination yet. */
  wssMissing: number;
  wssPages: number;
}

export function simulateMigrations(hosts: readonly MigSimHost[], actions: readonly MigSimAction[], horizonS: number, params: Partial<MigSimParams> = {}): MigSimResult {
  const p = { ...DEFAULT_MIG_SIM, ...params };
  const dt = p.tickS;
  const ticks = Math.round(horizonS / dt);
  const vms = new Map<string, VmState>(hosts.flatMap((h) => h.vms.map((vm) => [vm.uuid, { vm, host: h.hostId, paused: false, lost: 0 }] as const)));
  const migs: MigState[] = actions
    .filter((a): a is Extract<MigSimAction, { kind: 'migrate' }> => a.kind === 'migrate')
    .map((a) => ({ a, phase: 'wait', left: 0, dirty: 0, rounds: 0, sent: 0, stopS: NaN, resumeS: NaN, endS: NaN, lostAtStart: 0, lostAtResume: 0, lostAtEnd: NaN, wssMissing: 0, wssPages: 0 }));
  const byHost = new Map(hosts.map((h) => [h.hostId, h.vms.map((v) => vms.get(v.uuid)!)]));
  const moveVm = (vs: VmState, to: string): void => {
    byHost.set(vs.host, byHost.get(vs.host)!.filter((x) => x !== vs));
    byHost.get(to)?.push(vs);
    vs.host = to;
  };
  const throttlesOf = new Map<string, Extract<MigSimAction, { kind: 'throttle' }>[]>();
  for (const a of actions) if (a.kind === 'throttle') throttlesOf.set(a.vmUuid, [...(throttlesOf.get(a.vmUuid) ?? []), a]);
  const migOf = new Map<string, MigState[]>();
  for (const m of migs) migOf.set(m.a.vmUuid, [...(migOf.get(m.a.vmUuid) ?? []), m]);
  const tickPowerW = new Map(hosts.map((h) => [h.hostId, new Float64Array(ticks)]));
  const wss = (vm: MigSimVm): number => Math.min(vm.memoryBytes, vm.workingSetBytes ?? vm.dirtyRateBps);

  for (let i = 0; i < ticks; i++) {
    const t = i * dt;
    // Phase changes that happen at this tick.
    for (const m of migs) {
      const vs = vms.get(m.a.vmUuid)!;
      if (m.phase === 'wait' && t + 1e-9 >= m.a.startS) {
        m.phase = 'setup';
        m.lostAtStart = vs.lost;
      }
      if (m.phase === 'setup' && t + 1e-9 >= m.a.startS + p.setupS) {
        if (m.a.mode === 'post-copy') {
          m.phase = 'device';
          vs.paused = true;
          m.stopS = t;
          m.left = p.deviceStateS;
        } else {
          m.phase = 'copy';
          m.left = vs.vm.memoryBytes;
          m.rounds = 1;
        }
      }
    }
    // CPU demand and copy rates per host.
    const copyRate = new Map<MigState, number>();
    const hostCopyCores = new Map<string, number>();
    for (const m of migs) {
      if (m.phase !== 'copy' && m.phase !== 'stop-copy' && m.phase !== 'push') continue;
      const rate = m.a.bandwidthBps * p.linkEfficiency;
      copyRate.set(m, rate);
      const c = (rate / 1e9) * p.copyCoresPerGBps;
      hostCopyCores.set(m.a.fromHostId, (hostCopyCores.get(m.a.fromHostId) ?? 0) + c);
      hostCopyCores.set(m.a.toHostId, (hostCopyCores.get(m.a.toHostId) ?? 0) + c);
    }
    const quotaOf = (vm: string): { q: number; f: number } => {
      let q = 1;
      let f = 1;
      for (const th of throttlesOf.get(vm) ?? []) {
        if ( t + 1e-9 < th.fromS || (th.untilS !== null && t + 1e-9 >= th.untilS)) continue;
        if (th.method === 'dvfs') f = Math.min(f, th.frequencyFraction ?? 1);
        else q = Math.min(q, th.cpuQuotaFraction);
      }
      return { q, f };
    };
    // Per-VM progress this tick: quota, frequency, CPU share, dirty logging, remote faults.
    const progress = new Map<string, number>();
    for (const h of hosts) {
      const all = byHost.get(h.hostId)!;
      const want = all.filter((v) => !v.paused).map((v) => {
        const qf = quotaOf(v.vm.uuid);
        return { v, ...qf, cores: v.vm.cores * qf.q };
      });
      const copyCores = hostCopyCores.get(h.hostId) ?? 0;
      const guestDemand = want.reduce((a, w) => a + w.cores, 0);
      // The copy threads run first (host threads, not in the guests' cgroups); guests share what is left.
      const copyGot = Math.min(copyCores, h.cores);
      const share = guestDemand > 0 ? Math.min(1, (h.cores - copyGot) / guestDemand) : 1;
      // Progress is counted against what the guests would get without the copy (a host saturated
      // anyway does not count as a loss; a quota or a lower frequency does).
      const baseShare = guestDemand > 0 ? Math.min(1, h.cores / guestDemand) : 1;
      let busyW = copyGot * h.coreW;
      let staticW = 0;
      for (const w of want) {
        const cores = w.cores * share;
        busyW += cores * h.coreW * w.f ** p.dvfsExponent;
        staticW += w.v.vm.staticW;
        let rate = (w.q * (share / baseShare) * w.f) || 0;
        const mig = migOf.get(w.v.vm.uuid)?.find((m) => m.phase === 'copy' || m.phase === 'push');
        if (mig?.phase === 'copy') rate /= 1 + (w.v.vm.dirtyRateBps / PAGE) * rate * p.wpFaultS;
        if (mig?.phase === 'push') {
          const miss = mig.wssPages > 0 ? mig.wssMissing / mig.wssPages : 0;
          const coldMiss = Math.max(0, 1 - mig.sent / w.v.vm.memoryBytes);
          const faultsPerWork = (w.v.vm.dirtyRateBps / PAGE) * miss + p.coldPagesPerS * coldMiss;
          rate /= 1 + faultsPerWork * rate * p.remoteFaultS;
          const faulted = Math.min(mig.wssMissing, (w.v.vm.dirtyRateBps / PAGE) * miss * rate * dt);
          mig.wssMissing -= faulted;
        }
        progress.set(w.v.vm.uuid, rate);
      }
      // Paused VMs keep their static power (memory stays powered) on the host they are on.
      for (const v of all) if (v.paused) staticW += v.vm.staticW;
      tickPowerW.get(h.hostId)![i] = h.idleW + Math.min(busyW, h.cores * h.coreW) + staticW;
    }
    for (const v of vms.values()) v.lost += (1 - (progress.get(v.vm.uuid) ?? 0)) * dt;
    // Advance the migrations.
    for (const m of migs) {
      const vs = vms.get(m.a.vmUuid)!;
      const rate = copyRate.get(m) ?? 0;
      if (m.phase === 'copy') {
        const send = Math.min(m.left, rate * dt);
        m.left -= send;
        m.sent += send;
        m.dirty = Math.min(wss(vs.vm), m.dirty + vs.vm.dirtyRateBps * (progress.get(vs.vm.uuid) ?? 0) * dt);
        if (m.left <= 0) {
          const next = m.dirty;
          m.dirty = 0;
          if (next / rate <= p.downtimeLimitS || m.rounds >= p.maxRounds) {
            m.phase = 'stop-copy';
            vs.paused = true;
            m.stopS = t + dt;
            m.left = next;
          } else {
            m.left = next;
            m.rounds++;
          }
        }
      } else if (m.phase === 'stop-copy') {
        const send = Math.min(m.left, rate * dt);
        m.left -= send;
        m.sent += send;
        if (m.left <= 0) {
          vs.paused = false;
          moveVm(vs, m.a.toHostId);
          m.phase = 'done';
          m.resumeS = m.endS = t + dt;
          m.lostAtResume = m.lostAtEnd = vs.lost;
        }
      } else if (m.phase === 'device') {
        m.left -= dt;
        if (m.left <= 1e-9) {
          vs.paused = false;
          moveVm(vs, m.a.toHostId);
          m.phase = 'push';
          m.resumeS = t + dt;
          m.lostAtResume = vs.lost;
          m.left = vs.vm.memoryBytes;
          m.wssPages = wss(vs.vm) / PAGE;
          m.wssMissing = m.wssPages;
          m.rounds = 1;
        }
      } else if (m.phase === 'push') {
        const send = Math.min(m.left, rate * dt);
        m.left -= send;
        m.sent += send;
        // Pages pushed in address order hit the working set in proportion to its share of memory.
        m.wssMissing = Math.max(0, m.wssMissing - (send / vs.vm.memoryBytes) * m.wssPages);
        if (m.left <= 0) {
          m.phase = 'done';
          m.endS = t + dt;
          m.lostAtEnd = vs.lost;
        }
      }
    }
  }
  const powerW = new Map(
    [...tickPowerW].map(([id, tl]) => {
      const per = Math.round(1 / dt);
      return [id, Array.from({ length: horizonS }, (_, s) => tl.subarray(s * per, (s + 1) * per).reduce((a, w) => a + w, 0) / per)];
    }),
  );
  const migrations: MigSimMigration[] = migs.map((m) => {
    const done = Number.isFinite(m.endS);
    const span = done ? m.endS - m.a.startS : 0;
    return {
      vmUuid: m.a.vmUuid,
      mode: m.a.mode,
      startS: m.a.startS,
      stopS: m.stopS,
      resumeS: m.resumeS,
      endS: m.endS,
      rounds: m.rounds,
      transferredBytes: m.sent,
      slowdown: span > 0 ? (m.lostAtEnd - m.lostAtStart) / span : NaN,
      postCopySlowdown: m.a.mode === 'post-copy' && m.endS > m.resumeS ? (m.lostAtEnd - m.lostAtResume) / (m.endS - m.resumeS) : 0,
    };
  });
  return { powerW, tickPowerW, migrations, lostWorkS: new Map([...vms].map(([id, v]) => [id, v.lost])) };
}
