#!/usr/bin/env node
// Agent cost per sampling round on a fixture host with N VMs (cgroup v2, 4 vCPUs and one tap each,
// dual-socket RAPL, 64 CPUs with cpufreq): CPU µs per round and per VM (process.cpuUsage, user+system),
// peak RSS. A round = Agent.sampleOnce() + encodeFrame(); spool append (fsync'd) is measured apart.
//   node --max-semi-space-size=4 benchmarks/agent-round.mjs [--vms 200] [--rounds 300] [--no-keep-open]
// (the flag is what deploy/systemd/wattsplit-agent.service runs the agent with: it caps V8's young
// generation, which otherwise grows to 3 × 16 MB of mostly garbage and dominates peak RSS).
// Prints one JSON line and one markdown row. Targets: ≤ 50 µs per VM per round, ≤ 80 MB peak RSS.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (n, d) => {
  const i = process.argv.indexOf(n);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};
const N = arg('--vms', 200);
const ROUNDS = arg('--rounds', 300);
const childTree = process.argv.includes('--tree') ? process.argv[process.argv.indexOf('--tree') + 1] : undefined;

if (childTree === undefined) {
  // parent: write the fixture host, then measure in a fresh process (its RSS is then the agent's own)
  const tree = mkdtempSync(join(tmpdir(), 'wattsplit-bench-host-'));
  writeTree(tree);
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2), '--tree', tree], { stdio: 'inherit' });
  rmSync(tree, { recursive: true, force: true });
  process.exit(r.status ?? 1);
}

const agentPkg = await import(join(root, 'packages/agent/dist/index.js'));
const wire = await import(join(root, 'packages/wire/dist/index.js'));
const tree = childTree;
const spoolDir = mkdtempSync(join(tmpdir(), 'wattsplit-bench-spool-'));
const domains = [];
for (let i = 1; i <= N; i++) {
  domains.push({ uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, name: `vm-${i}`, id: i, state: 'running', vcpus: 4, memoryBytes: 8 << 30, tenant: `t${i % 7}`, gpuPciAddresses: [], taps: [`vnet${i}`], flavor: 'm1.large' });
}

function writeTree(tree) {
const put = (p, t) => {
  mkdirSync(dirname(join(tree, p)), { recursive: true });
  writeFileSync(join(tree, p), t);
};
for (const [id, name] of [['0', 'package-0'], ['0:0', 'core'], ['0:1', 'dram'], ['1', 'package-1'], ['1:0', 'core'], ['1:1', 'dram']]) {
  put(`/sys/class/powercap/intel-rapl:${id}/name`, `${name}\n`);
  put(`/sys/class/powercap/intel-rapl:${id}/energy_uj`, '123456789012\n');
  put(`/sys/class/powercap/intel-rapl:${id}/max_energy_range_uj`, '262143328850\n');
}
let stat = 'cpu  4705 356 584 3699176 23 0 18 0 0 0\n';
for (let c = 0; c < 64; c++) {
  stat += `cpu${c} 100 5 10 90000 1 0 1 0 0 0\n`;
  put(`/sys/devices/system/cpu/cpu${c}/cpufreq/scaling_cur_freq`, '2400000\n');
}
put('/proc/stat', stat);
put('/proc/cpuinfo', 'processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz\nphysical id\t: 0\n');
put('/sys/fs/cgroup/cgroup.controllers', 'cpuset cpu io memory pids\n');
for (let i = 1; i <= N; i++) {
  const d = `/sys/fs/cgroup/machine.slice/machine-qemu\\x2d${i}\\x2dvm\\x2d${i}.scope`;
  put(`${d}/cpu.stat`, `usage_usec ${i * 1000000}\nuser_usec 1\nsystem_usec 1\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n`);
  put(`${d}/memory.current`, '1073741824\n');
  put(`${d}/io.stat`, '253:0 rbytes=1000 wbytes=2000 rios=1 wios=2 dbytes=0 dios=0\n');
  for (let k = 0; k < 4; k++) put(`${d}/libvirt/vcpu${k}/cpu.stat`, `usage_usec ${i * 200000}\nuser_usec 1\nsystem_usec 1\n`);
  put(`/sys/class/net/vnet${i}/statistics/rx_bytes`, '1000\n');
  put(`/sys/class/net/vnet${i}/statistics/tx_bytes`, '2000\n');
}
}

const agent = new agentPkg.Agent({ hostId: 'bench-host', fs: new agentPkg.RootedHostFs(tree, { keepOpen: !process.argv.includes('--no-keep-open') }), domains: new agentPkg.StaticDomainSource(domains), logger: wire.silentLogger, stateDir: spoolDir });
let bytes = 0;
for (let r = 0; r < 30; r++) bytes = wire.encodeFrame(await agent.sampleOnce()).length; // warm-up (JIT, discovery)
const frame0 = await agent.sampleOnce();
if (frame0.vms.length !== N) throw new Error(`expected ${N} VMs in the frame, got ${frame0.vms.length}`);
const c0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
for (let r = 0; r < ROUNDS; r++) bytes = wire.encodeFrame(await agent.sampleOnce()).length;
const wallUs = Number(process.hrtime.bigint() - t0) / 1000 / ROUNDS;
const c1 = process.cpuUsage(c0);
const cpuUs = (c1.user + c1.system) / ROUNDS;

// spool append cost (fsync'd), measured apart
const spool = agentPkg.FrameSpool.open({ dir: join(spoolDir, 'spool'), logger: wire.silentLogger });
const enc = wire.encodeFrame(frame0);
const s0 = process.cpuUsage();
const st0 = process.hrtime.bigint();
const SP = 50;
for (let r = 0; r < SP; r++) spool.append(enc);
const spoolWallUs = Number(process.hrtime.bigint() - st0) / 1000 / SP;
const s1 = process.cpuUsage(s0);
spool.close();

const rssMb = process.resourceUsage().maxRSS / 1024;
const res = {
  bench: 'agent-round',
  vms: N,
  rounds: ROUNDS,
  cpuUsPerRound: Math.round(cpuUs),
  cpuUsPerVm: +(cpuUs / N).toFixed(1),
  wallUsPerRound: Math.round(wallUs),
  coreFractionAt1Hz: +(cpuUs / 1e6).toFixed(4),
  frameBytes: bytes,
  spoolAppendCpuUs: Math.round((s1.user + s1.system) / SP),
  spoolAppendWallUs: Math.round(spoolWallUs),
  peakRssMb: +rssMb.toFixed(1),
  node: process.version,
  nodeFlags: process.execArgv.join(' '),
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? '',
  date: new Date().toISOString().slice(0, 10),
  targets: { cpuUsPerVm: 50, peakRssMb: 80 },
  pass: cpuUs / N <= 50 && rssMb <= 80,
};
process.stdout.write(`${JSON.stringify(res)}\n`);
process.stdout.write(`| agent round, ${N} VMs (cgroup v2) | ${res.cpuUsPerRound} µs CPU/round, ${res.cpuUsPerVm} µs/VM (${(res.coreFractionAt1Hz * 100).toFixed(2)} % of a core at 1 Hz) | peak RSS ${res.peakRssMb} MB | frame ${bytes} B, spool append ${res.spoolAppendWallUs} µs wall | ${res.cpus}-core ${res.cpuModel}, node ${res.node} | ${res.date} | \`node ${res.nodeFlags ? `${res.nodeFlags} ` : ''}benchmarks/agent-round.mjs --vms ${N}\` |\n`);
rmSync(spoolDir, { recursive: true, force: true });
