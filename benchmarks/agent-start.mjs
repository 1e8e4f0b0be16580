#!/usr/bin/env node
// Start-up of the packaged agent (issue 13: "starts in ≤ 300 ms"), wall clock, whole process, through the
// artefact's own wrapper (bin/wattsplit-agent: /bin/sh + node + the bundle), beside bare node in the same run:
//   version  `wattsplit-agent --version`: spawn → exit (node start + the bundle loaded and evaluated)
//   started  spawn → the "agent started" log line (config read, sources opened on a fake host tree of N VMs,
//            spool recovered, gRPC channel set up)
//   frame    spawn → the gateway has accepted the agent's first frame (the first round sampled, encoded,
//            spooled and streamed over gRPC on loopback)
//   node     `node -e 0` with the wrapper's flags: the floor every Node program pays on this machine
// Each run spawns the four one after the other, order rotated per run; medians and quartiles over --runs.
// CPU (user+sys of the agent process from /proc/PID/stat when it is ready, before it is killed; the wrapper
// execs node, so the pid is node's) is printed for the two that keep running: the wall figures move with the
// machine's load, the CPU ones much less.
//   node benchmarks/agent-start.mjs [--runs 15] [--vms 50] [--bundle DIR] [--json]
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setInterval, clearInterval } from 'node:timers';
import { parseArgs } from 'node:util';
import { benchAgentConfig, writeHostTree } from './agent-host-tree.mjs';
import { AGENT_NODE_FLAGS } from '../scripts/agent-node-flags.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({ options: { runs: { type: 'string', default: '15' }, vms: { type: 'string', default: '50' }, bundle: { type: 'string' }, json: { type: 'boolean' } } });
const RUNS = Number(opt.runs);
const VMS = Number(opt.vms);

function treeDir() {
  const base = opt.bundle ?? join(root, 'dist/agent');
  const manifest = join(base, 'manifest.json');
  if (!opt.bundle && !existsSync(manifest)) execFileSync(process.execPath, [join(root, 'scripts/package-agent.mjs'), '--no-tarball'], { cwd: root, stdio: 'inherit' });
  return existsSync(manifest) ? join(base, JSON.parse(readFileSync(manifest, 'utf8')).tree) : base;
}
const tree = treeDir();
const wrapper = join(tree, 'bin/wattsplit-agent');
if (!existsSync(wrapper)) throw new Error(`no wrapper at ${wrapper}`);

const { startGateway } = await import(join(root, 'packages/gateway/dist/index.js'));
const { InProcessBus } = await import(join(root, 'packages/wire/dist/index.js'));

const CLK_TCK = 100;
/** The child's user+sys CPU in ms so far, from /proc/PID/stat (NaN once it has exited and been reaped). */
function cpuMsOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Spawns cmd and resolves with the wall ms until `until` says so (or the exit), then kills it. */
function timed(cmd, args, until) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const finish = (ms) => {
      if (done) return;
      done = true;
      const cpu = cpuMsOf(child.pid);
      if (child.exitCode === null) child.kill('SIGKILL');
      resolve({ ms, cpu });
    };
    const onData = (b) => {
      out += b.toString();
      if (until?.onLine && until.onLine(out)) finish(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    until?.watch?.(() => finish(Number(process.hrtime.bigint() - t0) / 1e6));
    child.on('exit', (code) => {
      if (!done && until) reject(new Error(`${cmd} ${args.join(' ')} exited ${code} before it was ready: ${out.slice(-800)}`));
      else if (!done) finish(Number(process.hrtime.bigint() - t0) / 1e6);
    });
    setTimeout(() => !done && reject(new Error(`${cmd} not ready in 30 s: ${out.slice(-800)}`)), 30_000).unref();
  });
}

const work = mkdtempSync(join(tmpdir(), 'wattsplit-agent-start-'));
const host = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'wattsplit-host-start-'));
const vms = writeHostTree(host, VMS);
const bus = new InProcessBus({ partitions: 1 });
const gw = await startGateway({ producer: bus.producer() });
const cfg = join(work, 'agent.json');
let spoolN = 0;
const writeCfg = () => {
  spoolN += 1; // a fresh spool each run: a start with nothing to recover, like a first install
  writeFileSync(cfg, JSON.stringify(benchAgentConfig({ hostId: `start-${spoolN}`, host, gatewayAddress: gw.address, spoolDir: join(work, `spool-${spoolN}`), vms })));
};

const kinds = {
  node: () => timed(process.execPath, [...AGENT_NODE_FLAGS, '-e', '0']),
  version: () => timed(wrapper, ['--version']),
  started: () => {
    writeCfg();
    return timed(wrapper, ['--config', cfg, '--log-level', 'info'], { onLine: (out) => out.includes('"msg":"agent started"') });
  },
  frame: () => {
    writeCfg();
    const before = gw.stats().framesAccepted;
    let poll;
    return timed(wrapper, ['--config', cfg, '--log-level', 'warn'], {
      watch: (fire) => {
        poll = setInterval(() => {
          if (gw.stats().framesAccepted > before) {
            clearInterval(poll);
            fire();
          }
        }, 2);
      },
    }).finally(() => clearInterval(poll));
  },
};
const names = Object.keys(kinds);
const res = Object.fromEntries(names.map((k) => [k, { ms: [], cpu: [] }]));
const load0 = loadavg()[0];
try {
  for (let r = 0; r < RUNS + 1; r++) {
    for (let i = 0; i < names.length; i++) {
      const k = names[(i + r) % names.length];
      const { ms, cpu } = await kinds[k]();
      if (r > 0) {
        // run 0 warms the page cache (the first start after a build reads the files from disk)
        res[k].ms.push(ms);
        res[k].cpu.push(cpu);
      }
      await new Promise((s) => setTimeout(s, 100));
    }
  }
} finally {
  await gw.close(0);
  rmSync(work, { recursive: true, force: true });
  rmSync(host, { recursive: true, force: true });
}
const q = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  const i = (s.length - 1) * p;
  return s[Math.floor(i)] + (s[Math.ceil(i)] - s[Math.floor(i)]) * (i - Math.floor(i));
};
const machine = `${cpus().length}-vCPU ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
const load1 = loadavg()[0];
const cmd = `node benchmarks/agent-start.mjs ${process.argv.slice(2).join(' ')}`.trim();
if (opt.json) {
  for (const k of names) process.stdout.write(`${JSON.stringify({ kind: k, vms: VMS, runs: RUNS, wallMsMedian: q(res[k].ms, 0.5), wallMsP25: q(res[k].ms, 0.25), wallMsP75: q(res[k].ms, 0.75), cpuMsMedian: q(res[k].cpu, 0.5), machine, load: [load0, load1], date: new Date().toISOString() })}\n`);
} else {
  process.stdout.write(`${machine}, ${new Date().toISOString().slice(0, 16)}Z, ${RUNS} runs, ${VMS} VMs, load ${load0.toFixed(1)} → ${load1.toFixed(1)}\n`);
  process.stdout.write('| start | wall ms median | wall ms p25–p75 | CPU ms median (user+sys, 10 ms ticks) | median − node |\n|---|---|---|---|---|\n');
  const base = q(res.node.ms, 0.5);
  for (const k of names) process.stdout.write(`| ${k} | ${q(res[k].ms, 0.5).toFixed(0)} | ${q(res[k].ms, 0.25).toFixed(0)}–${q(res[k].ms, 0.75).toFixed(0)} | ${Number.isNaN(q(res[k].cpu, 0.5)) ? '—' : q(res[k].cpu, 0.5).toFixed(0)} | ${k === 'node' ? '—' : (q(res[k].ms, 0.5) - base).toFixed(0)} |\n`);
  process.stdout.write(`command: \`${cmd}\`\n`);
}
