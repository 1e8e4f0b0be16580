#!/usr/bin/env node
// CPU of one sampling round in-process, builds side by side: Agent.sampleOnce() + the frame encoder over the fake
// cgroup v1 host of benchmarks/agent-process.mjs (benchmarks/agent-host-tree.mjs; tmpfs, files kept open), N VMs.
// It isolates the round from the rest of the process (gRPC, spool, timers): where a change to the samplers shows
// before the whole-process benchmark can resolve it.
//   node benchmarks/agent-round-v1.mjs [--vms 200] [--rounds 200] [--reps 7] [--dist label=DIR,label=DIR]
// DIR is an agent package's dist/ (default: packages/agent/dist, labelled `workspace`); an earlier build is a copy
// of packages/agent/dist with a `node_modules` link beside it to packages/agent/node_modules:
//   mkdir -p /tmp/before && cp -r packages/agent/dist /tmp/before/dist && ln -s $PWD/packages/agent/node_modules /tmp/before/
// Each rep runs every build in turn, each in a fresh node with the packaged agent's flags; a rep = `rounds`
// rounds after 200 warm-up rounds, CPU from process.cpuUsage (user, system). Prints the median rep per build.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { writeHostTree } from './agent-host-tree.mjs';
import { AGENT_NODE_FLAGS } from '../scripts/agent-node-flags.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const NODE_FLAGS = AGENT_NODE_FLAGS;
const { values: opt } = parseArgs({
  options: {
    vms: { type: 'string', default: '200' }, rounds: { type: 'string', default: '200' }, reps: { type: 'string', default: '7' },
    dist: { type: 'string', default: `workspace=${join(root, 'packages/agent/dist')}` }, child: { type: 'string' },
  },
});

if (opt.child) {
  // child: one build, one rep; prints {user, system} µs per round
  const dist = opt.child;
  const agentPkg = await import(pathToFileURL(join(dist, 'index.js')).href);
  const { encodeTelemetryFrame } = await import(pathToFileURL(join(dist, 'telemetry-frame-encoder.js')).href);
  const host = mkdtempSync(join('/dev/shm', 'wattsplit-round-host-'));
  try {
    const vms = writeHostTree(host, Number(opt.vms));
    const fs = new agentPkg.RootedHostFs(host, { keepOpen: true });
    const log = { child: () => log, trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {} };
    const domains = vms.map((v) => ({ ...v, state: 'running', gpuPciAddresses: [] }));
    const agent = new agentPkg.Agent({ hostId: 'bench', fs, domains: new agentPkg.StaticDomainSource(domains), logger: log });
    for (let i = 0; i < 200; i++) encodeTelemetryFrame(await agent.sampleOnce());
    const rounds = Number(opt.rounds);
    const c0 = process.cpuUsage();
    for (let i = 0; i < rounds; i++) encodeTelemetryFrame(await agent.sampleOnce());
    const c = process.cpuUsage(c0);
    process.stdout.write(JSON.stringify({ user: c.user / rounds, system: c.system / rounds }));
  } finally {
    rmSync(host, { recursive: true, force: true });
  }
} else {
  const builds = opt.dist.split(',').map((s) => {
    const eq = s.indexOf('=');
    return { label: s.slice(0, eq), dir: resolve(s.slice(eq + 1)), reps: [] };
  });
  const load0 = loadavg()[0];
  for (let r = 0; r < Number(opt.reps); r++) {
    for (const b of builds) {
      const out = execFileSync(process.execPath, [...NODE_FLAGS, fileURLToPath(import.meta.url), '--child', b.dir, '--vms', opt.vms, '--rounds', opt.rounds], { encoding: 'utf8' });
      b.reps.push(JSON.parse(out));
    }
  }
  const load1 = loadavg()[0];
  const n = Number(opt.vms);
  process.stdout.write(`${n} VMs, ${opt.rounds} rounds x ${opt.reps} reps, load ${load0.toFixed(1)} -> ${load1.toFixed(1)}, ${new Date().toISOString().slice(0, 16)}Z\n`);
  process.stdout.write('| build | µs/round, median rep (user + system) | µs per VM | min–max rep |\n|---|---|---|---|\n');
  for (const b of builds) {
    const tot = b.reps.map((x) => ({ ...x, t: x.user + x.system })).sort((x, y) => x.t - y.t);
    const m = tot[(tot.length - 1) >> 1];
    process.stdout.write(`| ${b.label} | ${m.t.toFixed(0)} (${m.user.toFixed(0)} + ${m.system.toFixed(0)}) | ${(m.t / n).toFixed(1)} | ${tot[0].t.toFixed(0)}–${tot[tot.length - 1].t.toFixed(0)} |\n`);
  }
}
