#!/usr/bin/env node
// Whole-process cost of the agent: the real `wattsplit agent` process (sampling, spool with fsync, gRPC
// stream, timers, GC) against a fake host tree, streaming to a real gateway on loopback, 1 s interval.
// The packaged agent (scripts/package-agent.mjs, the artefact operators install) and the workspace build
// (packages/cli/dist/main.js) run side by side, at the same time, so both see the same machine load.
//
// Host tree (written to tmpfs under /dev/shm, read with --sysfs-root and sysfsKeepOpen, as the agent reads kernfs): dual-socket RAPL (6 zones), 64 CPUs with
// cpufreq, cgroup v1 (cpuacct, memory, blkio under machine/qemu-<id>-<name>.libvirt-qemu) with N qemu-like
// VMs of 4 vCPUs and one tap each (in /sys/class/net and /proc/1/net/dev); the VM list is static (libvirt off), NVML and perf off.
// CPU: the sum over the process's threads of /proc/PID/task/*/schedstat (ns on CPU), sampled every second
// → CPU ms per second, median over the window; cross-checked with /proc/PID/stat utime+stime over the
// window (whole process, exited threads included). RSS: /proc/PID/status VmRSS every second (median,
// max) and VmHWM at the end. Every variant runs node with the packaged wrapper's V8 flags (WRAPPER_FLAGS) unless
// --node-flags=... says otherwise.
//   node benchmarks/agent-process.mjs [--vms 50,200,500] [--warmup 15] [--seconds 40] [--variants bundle,workspace]
//                                     [--bundle DIR] [--node-flags="--max-semi-space-size=4"] [--json]
// --variants also takes `label=DIR` (an unpacked bundle tree or a package-agent.mjs --out dir, e.g. the build before
// a change, run beside the others under the same load), with `+--flag` (node flags) and `+NAME=VALUE` (environment)
// for that variant only (`+--no-common-flags`: without the common ones): before=/tmp/agent-before+--no-common-flags+--max-semi-space-size=4
// (a DIR whose name has a `+`, like the version-named tree, is given as its --out dir: the manifest names the tree)
// and `+@KEY=JSON` for an agent config setting of that variant only: vcpu=DIR+@slowVcpuCounters=true
// Targets (issue 13), whole process: ≤ 3 ms/s at 50 VMs, ≤ 6 ms/s at 200, ≤ 60 MB RSS.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchAgentConfig, writeHostTree } from './agent-host-tree.mjs';
import { AGENT_NODE_FLAGS } from '../scripts/agent-node-flags.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    vms: { type: 'string', default: '50,200,500' }, warmup: { type: 'string', default: '15' }, seconds: { type: 'string', default: '40' },
    variants: { type: 'string', default: 'bundle,workspace' }, bundle: { type: 'string' }, 'node-flags': { type: 'string' },
    json: { type: 'boolean' },
  },
});
const VM_COUNTS = opt.vms.split(',').map(Number);
const WARMUP_S = Number(opt.warmup);
const WINDOW_S = Number(opt.seconds);
const VARIANTS = opt.variants.split(',');
// the flags the packaged wrapper runs node with (scripts/agent-node-flags.mjs), for every variant
const WRAPPER_FLAGS = AGENT_NODE_FLAGS;
const NODE_FLAGS = (opt['node-flags'] ?? WRAPPER_FLAGS.join(' ')).split(' ').filter(Boolean);
const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux x86-64

const { startGateway } = await import(join(root, 'packages/gateway/dist/index.js'));
const { InProcessBus } = await import(join(root, 'packages/wire/dist/index.js'));

// ---- /proc readers ----------------------------------------------------------------------------------
function threadsCpuNs(pid) {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch { /* the thread exited between readdir and read */ }
  }
  return ns;
}
function statCpuMs(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK; // utime, stime: fields 14, 15
}
function statusKb(pid, key) {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const k = s.length >> 1;
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the artefact -----------------------------------------------------------------------------------
function bundleBin() {
  if (opt.bundle) return join(opt.bundle, 'lib/agent.mjs');
  const manifest = join(root, 'dist/agent/manifest.json');
  if (!existsSync(manifest)) execFileSync(process.execPath, [join(root, 'scripts/package-agent.mjs'), '--no-tarball'], { cwd: root, stdio: 'inherit' });
  const m = JSON.parse(readFileSync(manifest, 'utf8'));
  if (m.nodeFlags && JSON.stringify(m.nodeFlags) !== JSON.stringify(WRAPPER_FLAGS)) throw new Error(`the bundle's wrapper runs node with ${m.nodeFlags.join(' ')}, this benchmark with ${WRAPPER_FLAGS.join(' ')}: keep WRAPPER_FLAGS equal to scripts/package-agent.mjs NODE_FLAGS`);
  return join(root, 'dist/agent', m.tree, 'lib/agent.mjs');
}
const commands = {
  bundle: () => [...NODE_FLAGS, bundleBin()],
  workspace: () => [...NODE_FLAGS, join(root, 'packages/cli/dist/main.js'), 'agent'],
};
const envs = {};
const configs = {};
// `label=DIR`: another unpacked bundle tree (an earlier build kept with `package-agent.mjs --out DIR`), run beside
// the others so a change is measured against the build before it under the same load
for (const v of VARIANTS) {
  const eq = v.indexOf('=');
  if (eq > 0) {
    // `label=DIR+--flag+--flag`: node flags for this variant only, after the common --node-flags
    const [dirArg = '', ...own] = v.slice(eq + 1).split('+');
    const dir = resolve(dirArg);
    const tree = existsSync(join(dir, 'manifest.json')) ? join(dir, JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).tree) : dir;
    if (!existsSync(join(tree, 'lib/agent.mjs'))) throw new Error(`--variants ${v}: no lib/agent.mjs under ${tree}`);
    // `+NAME=VALUE` (no leading dash): an environment variable for this variant (MALLOC_ARENA_MAX=2, ...)
    envs[v] = Object.fromEntries(own.filter((o) => !o.startsWith('-') && !o.startsWith('@') && o.includes('=')).map((o) => [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)]));
    configs[v] = Object.fromEntries(own.filter((o) => o.startsWith('@') && o.includes('=')).map((o) => [o.slice(1, o.indexOf('=')), JSON.parse(o.slice(o.indexOf('=') + 1))]));
    // `+--no-common-flags`: this variant runs without the common flags (an earlier build with its own wrapper's)
    const flags = own.filter((o) => o.startsWith('-') && o !== '--no-common-flags');
    const common = own.includes('--no-common-flags') ? [] : NODE_FLAGS;
    commands[v] = () => [...common, ...flags, join(tree, 'lib/agent.mjs')];
  } else if (!commands[v]) throw new Error(`--variants: unknown ${v} (bundle, workspace, label=DIR)`);
}

// ---- one step: N VMs, every variant at once ------------------------------------------------------------
async function step(n) {
  const work = mkdtempSync(join(tmpdir(), `wattsplit-agent-process-${n}-`));
  // the host tree in memory (tmpfs, like sysfs/cgroupfs); the spools on disk, like /var/lib/wattsplit
  const host = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `wattsplit-host-${n}-`));
  const vms = writeHostTree(host, n);
  const bus = new InProcessBus({ partitions: 1 });
  const gw = await startGateway({ producer: bus.producer() });
  const procs = [];
  for (const v of VARIANTS) {
    const label = v.split('=')[0];
    const cfg = join(work, `${label}.json`);
    writeFileSync(cfg, JSON.stringify(benchAgentConfig({ hostId: `bench-${label}`, host, gatewayAddress: gw.address, spoolDir: join(work, `spool-${label}`), vms, extra: configs[v] })));
    const child = spawn(process.execPath, [...commands[v](), '--config', cfg, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...envs[v] } });
    let err = '';
    child.stderr.on('data', (b) => (err += b.toString()));
    procs.push({ variant: label, child, err: () => err });
  }
  try {
    await sleep(WARMUP_S * 1000);
    for (const p of procs) if (p.child.exitCode !== null) throw new Error(`${p.variant} agent exited ${p.child.exitCode}: ${p.err().slice(-1500)}`);
    const framesAtStart = gw.stats().framesAccepted;
    const state = procs.map((p) => ({ ...p, cpu: [], rss: [], lastNs: threadsCpuNs(p.child.pid), statMs0: statCpuMs(p.child.pid) }));
    const t0 = process.hrtime.bigint();
    let tPrev = t0;
    for (let s = 0; s < WINDOW_S; s++) {
      await sleep(1000);
      const now = process.hrtime.bigint();
      const dtS = Number(now - tPrev) / 1e9;
      tPrev = now;
      for (const p of state) {
        const ns = threadsCpuNs(p.child.pid);
        p.cpu.push((ns - p.lastNs) / 1e6 / dtS);
        p.lastNs = ns;
        p.rss.push(statusKb(p.child.pid, 'VmRSS') / 1024);
      }
    }
    const windowS = Number(process.hrtime.bigint() - t0) / 1e9;
    const frames = gw.stats().framesAccepted - framesAtStart;
    const rows = state.map((p) => ({
      variant: p.variant, vms: n, cpuMsPerS: median(p.cpu), cpuMsPerSStat: (statCpuMs(p.child.pid) - p.statMs0) / windowS,
      rssMB: median(p.rss), rssMaxMB: Math.max(...p.rss), hwmMB: statusKb(p.child.pid, 'VmHWM') / 1024,
    }));
    if (frames < VARIANTS.length * (WINDOW_S - 3)) throw new Error(`only ${frames} frames reached the gateway in ${windowS.toFixed(0)} s for ${VARIANTS.length} agents`);
    return { rows, frames };
  } finally {
    for (const p of procs) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => (p.child.exitCode !== null ? undefined : new Promise((r) => p.child.on('exit', r)))));
    await gw.close(0);
    rmSync(work, { recursive: true, force: true });
    rmSync(host, { recursive: true, force: true });
  }
}

const started = new Date().toISOString().slice(0, 16);
const machine = `${cpus().length}-vCPU ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
const results = [];
for (const n of VM_COUNTS) {
  const load = loadavg()[0].toFixed(1);
  const { rows } = await step(n);
  for (const r of rows) {
    results.push({ ...r, load1: Number(load) });
    if (opt.json) process.stdout.write(`${JSON.stringify({ ...r, load1: Number(load), machine, date: started })}\n`);
  }
}
if (!opt.json) {
  const cmd = `node benchmarks/agent-process.mjs ${process.argv.slice(2).join(' ')}`.trim();
  process.stdout.write(`${machine}, ${started}Z, window ${WINDOW_S} s after ${WARMUP_S} s warm-up\n`);
  process.stdout.write('| agent | VMs | CPU ms/s (median of 1 s slices) | CPU ms/s (stat, window mean) | RSS MB median | RSS MB max | VmHWM MB | load avg | command |\n|---|---|---|---|---|---|---|---|---|\n');
  for (const r of results) process.stdout.write(`| ${r.variant} | ${r.vms} | ${r.cpuMsPerS.toFixed(2)} | ${r.cpuMsPerSStat.toFixed(2)} | ${r.rssMB.toFixed(1)} | ${r.rssMaxMB.toFixed(1)} | ${r.hwmMB.toFixed(1)} | ${r.load1} | \`${cmd}\` |\n`);
}
