#!/usr/bin/env node
// The agent artefact: the hypervisor agent and only what it needs, runnable with the system's Node (20+).
//   node scripts/package-agent.mjs [--out dist/agent] [--no-tarball] [--json]
// (`npm run package:agent` builds the workspace first, then runs this.)
//
// What it makes, under --out (default dist/agent/):
//   wattsplit-agent-<version>-linux-x64/          the unpacked tree (what the .deb installs to /usr/lib/wattsplit-agent)
//     bin/wattsplit-agent                         sh wrapper: node with the agent's V8 flags (NODE_FLAGS), then lib/agent.mjs
//     lib/agent.mjs                               one esbuild bundle of packages/cli/dist/agent-main.js: the agent
//                                                 command, @wattsplit/{agent,wire}, protobufjs, pino (gRPC is the agent's own client on node:http2)
//     lib/node_modules/koffi/                     FFI for NVML and perf_event_open: index.js + the linux-x64 prebuilt only
//     lib/node_modules/@unraid/libvirt/           libvirt binding (its JS bundled with xml2js) + build/Release/libvirt.node,
//                                                 only when the workspace built the addon (libvirt-dev present)
//     VERSION, THIRD-PARTY-LICENSES.txt, SHA256SUMS (every file of the tree)
//   wattsplit-agent-<version>-linux-x64.tar.gz    reproducible (sorted, fixed mtime, root-owned, gzip -n)
//   wattsplit-agent-<version>-linux-x64.tar.gz.sha256   `sha256sum -c` format
//   manifest.json                                  version, sizes, files, checksum (paths relative to --out)
// <version> = packages/agent/package.json version + "+g" + the short git commit, "+dirty" when the agent's sources
// (packages/{agent,wire,cli}/src) differ from that commit. koffi and the libvirt addon load lazily, so a
// host without NVML, a PMU or libvirt runs the agent exactly as the workspace build does (`--check` says what is missing).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AGENT_NODE_FLAGS } from './agent-node-flags.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({ options: { out: { type: 'string' }, 'no-tarball': { type: 'boolean' }, json: { type: 'boolean' } } });
const outDir = resolve(root, opt.out ?? 'dist/agent');
const say = (s) => { if (!opt.json) process.stdout.write(`${s}\n`); };

const esbuild = await import('esbuild').catch(() => {
  throw new Error('esbuild is not installed: run `npx --yes pnpm@10.34.8 install` at the repository root (it is a root devDependency)');
});

// ---- version -------------------------------------------------------------------------------------
const agentPkgJson = JSON.parse(readFileSync(join(root, 'packages/agent/package.json'), 'utf8'));
const git = (...a) => { try { return execFileSync('git', a, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return ''; } };
const sha = git('rev-parse', '--short=8', 'HEAD') || 'nogit';
const dirty = git('status', '--porcelain', '--', 'packages/agent/src', 'packages/wire/src', 'packages/cli/src', 'scripts/package-agent.mjs') !== '';
const version = `${agentPkgJson.version}+g${sha}${dirty ? '.dirty' : ''}`;
const commitEpoch = Number(git('log', '-1', '--format=%ct') || Math.floor(Date.now() / 1000));
const name = `wattsplit-agent-${version}-linux-x64`;
const tree = join(outDir, name);

const entry = join(root, 'packages/cli/dist/agent-main.js');
if (!existsSync(entry)) throw new Error(`${relative(root, entry)} is missing: build first (node_modules/.bin/tsc -b packages/cli)`);

// earlier artefacts (another version) go: the directory holds one build
mkdirSync(outDir, { recursive: true });
for (const e of readdirSync(outDir)) if (e.startsWith('wattsplit-agent-') || e === 'manifest.json') rmSync(join(outDir, e), { recursive: true, force: true });
mkdirSync(join(tree, 'bin'), { recursive: true });
mkdirSync(join(tree, 'lib/node_modules'), { recursive: true });

// ---- the bundle ----------------------------------------------------------------------------------
// ESM, because the agent resolves koffi with createRequire(import.meta.url) (from lib/, so lib/node_modules
// is where Node finds it). CommonJS dependencies (protobufjs, pino) call require() for Node's
// built-ins: the banner gives the module a require of its own.
const banner = "import { createRequire as __wattsplitCreateRequire } from 'node:module';\nconst require = __wattsplitCreateRequire(import.meta.url);";
// pino's transports (pino.transport() and thread-stream) ship logs from a worker thread; the agent logs to stderr
// through pino.destination and never starts one, yet bundling them loads node:worker_threads at start-up (+0.6 MB
// RSS, docs/benchmarks.md "RSS at 500 VMs"). In the bundle thread-stream is a class that throws, and pino's own
// `isMainThread` (it only decides whether an async destination is flushed on exit) is true, as it is in the agent.
const noPinoWorkers = {
  name: 'no-pino-workers',
  setup(b) {
    b.onResolve({ filter: /^thread-stream$/ }, () => ({ path: 'thread-stream', namespace: 'agent-stub' }));
    b.onResolve({ filter: /^(node:)?worker_threads$/ }, (a) => (/[\\/]pino[\\/]/.test(a.importer) ? { path: 'worker_threads', namespace: 'agent-stub' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'agent-stub' }, (a) => ({
      loader: 'js',
      contents: a.path === 'thread-stream'
        ? "module.exports = class ThreadStream { constructor() { throw new Error('pino transports are not in the packaged agent (it logs to stderr)'); } };"
        : 'module.exports = { isMainThread: true };',
    }));
  },
};
// node:tls and node:crypto are required, not imported: an ESM `import ... from 'node:tls'` evaluates every export
// of the built-in's synthetic module, getters included, so `tls.rootCertificates` parsed Node's 144 root
// certificates into JS strings (0.22 MB of heap in a snapshot at 500 VMs) in every agent, TLS or not, and
// `crypto.webcrypto` / `crypto.subtle` would load WebCrypto. Through the banner's require the agent gets the same
// module objects and reads only the exports it uses (esbuild's __toESM wraps them in getters: one closure per
// export, which is why the other built-ins, without such getters, stay imports). docs/benchmarks.md, "The agent's
// heap at 500 VMs".
const builtinsViaRequire = {
  name: 'builtins-via-require',
  setup(b) {
    b.onResolve({ filter: /^(node:)?(tls|crypto)$/ }, (a) => (a.kind === 'import-statement' ? { path: a.path.replace(/^node:/, ''), namespace: 'builtin-cjs' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'builtin-cjs' }, (a) => ({ loader: 'js', contents: `module.exports = require(${JSON.stringify(`node:${a.path}`)});` }));
  },
};
const built = await esbuild.build({
  entryPoints: [entry],
  outfile: join(tree, 'lib/agent.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  keepNames: true,
  legalComments: 'none',
  banner: { js: banner },
  // the version also labels wattsplit_build_info{version,commit,role="agent"} on --metrics-port
  define: { WATTSPLIT_AGENT_VERSION: JSON.stringify(version), WATTSPLIT_BUILD_VERSION: JSON.stringify(version), WATTSPLIT_BUILD_COMMIT: JSON.stringify(sha) },
  // loaded at run time from lib/node_modules (native addons), never inlined
  external: ['@unraid/libvirt', 'koffi'],
  metafile: true,
  plugins: [noPinoWorkers, builtinsViaRequire],
  logLevel: 'warning',
});
const forbidden = Object.keys(built.metafile.inputs).filter((p) => /(chdb|@tensorflow|@nestjs|kafkajs|@platformatic|@clickhouse)/.test(p));
if (forbidden.length) throw new Error(`the agent bundle pulled in modules the agent must not load: ${forbidden.slice(0, 5).join(', ')}`);
// and no ESM import of the built-ins whose exports include costly getters (builtinsViaRequire above)
const bundleText = readFileSync(join(tree, 'lib/agent.mjs'), 'utf8');
const esmBuiltins = [...bundleText.matchAll(/from\s*["'](?:node:)?(tls|crypto)["']/g)].map((m) => m[1]);
if (esmBuiltins.length) throw new Error(`the agent bundle imports node:${esmBuiltins[0]} as ESM (its getters run at start-up): route it through builtinsViaRequire`);

// ---- native / optional modules beside the bundle ---------------------------------------------------
// the agent package's own dependency links (pnpm: packages/agent/node_modules/<id> -> the store)
const pkgDirOf = (id) => {
  const d = join(root, 'packages/agent/node_modules', id);
  if (!existsSync(join(d, 'package.json'))) throw new Error(`${id} is not installed for packages/agent`);
  return realpathSync(d);
};
const copy = (from, to) => cpSync(from, to, { recursive: true, dereference: true });
const natives = {};

// koffi: index.js picks build/koffi/<triplet>/koffi.node; keep linux_x64 only (glibc: Debian, RHEL, Ubuntu).
const koffiDir = pkgDirOf('koffi');
const koffiOut = join(tree, 'lib/node_modules/koffi');
mkdirSync(join(koffiOut, 'build/koffi'), { recursive: true });
for (const f of ['package.json', 'index.js', 'LICENSE.txt']) if (existsSync(join(koffiDir, f))) copy(join(koffiDir, f), join(koffiOut, f));
copy(join(koffiDir, 'build/koffi/linux_x64'), join(koffiOut, 'build/koffi/linux_x64'));
natives.koffi = JSON.parse(readFileSync(join(koffiDir, 'package.json'), 'utf8')).version;

// @unraid/libvirt: optional; its addon exists only where the workspace was installed with libvirt-dev.
let libvirtDir;
try {
  libvirtDir = pkgDirOf('@unraid/libvirt');
} catch {
  libvirtDir = undefined;
}
const libvirtAddon = libvirtDir && join(libvirtDir, 'build/Release/libvirt.node');
if (libvirtAddon && existsSync(libvirtAddon)) {
  const out = join(tree, 'lib/node_modules/@unraid/libvirt');
  const lvPkg = JSON.parse(readFileSync(join(libvirtDir, 'package.json'), 'utf8'));
  // its JS (ESM, imports xml2js) as one file; the addon stays at ../build/Release relative to dist/
  await esbuild.build({
    entryPoints: [join(libvirtDir, 'dist/index.js')], outfile: join(out, 'dist/index.js'), bundle: true, platform: 'node', format: 'esm',
    target: 'node20', minify: true, legalComments: 'none', banner: { js: banner }, logLevel: 'warning',
  });
  mkdirSync(join(out, 'build/Release'), { recursive: true });
  copy(libvirtAddon, join(out, 'build/Release/libvirt.node'));
  if (existsSync(join(libvirtDir, 'LICENSE'))) copy(join(libvirtDir, 'LICENSE'), join(out, 'LICENSE'));
  writeFileSync(join(out, 'package.json'), `${JSON.stringify({ name: lvPkg.name, version: lvPkg.version, type: 'module', main: './dist/index.js', exports: { '.': './dist/index.js' }, license: lvPkg.license }, null, 2)}\n`);
  natives['@unraid/libvirt'] = lvPkg.version;
} else {
  say('note: @unraid/libvirt has no built addon in this workspace (libvirt-dev missing at install): the bundle has no libvirt binding; agents use the static VM list');
}

// ---- wrapper, version, licences --------------------------------------------------------------------
// V8 flags for a small steady process (measured with benchmarks/agent-process.mjs, docs/benchmarks.md "Agent, whole
// process"): a 1 MB young generation (the agent allocates < 1 MB a second), no background GC/compiler threads, and
// V8's size-over-speed choices. RSS 73 -> 62 MB at 200 VMs for the same CPU; --max-opt below TurboFan or --lite-mode
// save 2-8 MB more but cost 60-100 % more CPU. No allocation-site pretenuring: a round's samples live until the next
// round replaces them, so each scavenge (about one a round at 500 VMs) finds them all alive and V8 then allocates every
// round's samples straight in the old generation, which grows by 0.2-0.5 MB a second until the memory reducer's mark-compact
// (every ≈ 11 s): RSS -1.1 to -1.7 MB at 200 VMs and 0 to -1.2 MB at 500, CPU unchanged (docs/benchmarks.md "RSS at 500 VMs").
const NODE_FLAGS = AGENT_NODE_FLAGS;
writeFileSync(join(tree, 'bin/wattsplit-agent'), `#!/bin/sh
# wattsplit-agent ${version}: runs the bundled agent with the system's Node (20+), or $WATTSPLIT_NODE.
here=$(dirname "$(readlink -f "$0")")
exec "\${WATTSPLIT_NODE:-node}" ${NODE_FLAGS.join(' ')} "$here/../lib/agent.mjs" "$@"
`);
chmodSync(join(tree, 'bin/wattsplit-agent'), 0o755);
writeFileSync(join(tree, 'VERSION'), `${version}\n`);

// licences of everything inlined in the bundle (one per npm package) and of the native modules
const pkgRoots = new Set();
for (const input of Object.keys(built.metafile.inputs)) {
  const abs = join(root, input);
  const m = /^(.*\/node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(abs);
  if (m) pkgRoots.add(m[1]);
}
if (libvirtDir && natives['@unraid/libvirt']) pkgRoots.add(libvirtDir);
pkgRoots.add(koffiDir);
const licences = [];
for (const d of [...pkgRoots].sort()) {
  const p = JSON.parse(readFileSync(join(d, 'package.json'), 'utf8'));
  const lic = readdirSync(d).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
  licences.push(`== ${p.name}@${p.version} (${p.license ?? 'see file'})\n${lic ? readFileSync(join(d, lic), 'utf8').trim() : '(no licence file in the package)'}\n`);
}
writeFileSync(join(tree, 'THIRD-PARTY-LICENSES.txt'), `Third-party software in wattsplit-agent ${version}\n\n${licences.join('\n')}`);

// ---- checksums, size, tarball --------------------------------------------------------------------
const files = [];
(function walk(d) {
  for (const e of readdirSync(d).sort()) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else files.push(p);
  }
})(tree);
const sha256 = (p) => createHash('sha256').update(readFileSync(p)).digest('hex');
writeFileSync(join(tree, 'SHA256SUMS'), files.map((f) => `${sha256(f)}  ${relative(tree, f)}\n`).join(''));
files.push(join(tree, 'SHA256SUMS'));
const unpackedBytes = files.reduce((n, f) => n + statSync(f).size, 0);

const manifest = {
  name: 'wattsplit-agent', version, commit: sha, dirty, platform: 'linux-x64', node: '>=20',
  tree: name, nodeFlags: NODE_FLAGS, unpackedBytes, bundleBytes: statSync(join(tree, 'lib/agent.mjs')).size,
  files: files.length, natives, bundledInputs: Object.keys(built.metafile.inputs).length,
};
if (!opt['no-tarball']) {
  const tarball = join(outDir, `${name}.tar.gz`);
  execFileSync('sh', ['-c', 'tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner -C "$DIR" -cf - "$NAME" | gzip -n -9 > "$OUT"'], {
    env: { ...process.env, EPOCH: String(commitEpoch), DIR: outDir, NAME: name, OUT: tarball },
  });
  const sum = sha256(tarball);
  writeFileSync(`${tarball}.sha256`, `${sum}  ${name}.tar.gz\n`);
  Object.assign(manifest, { tarball: `${name}.tar.gz`, tarballBytes: statSync(tarball).size, sha256: sum });
}
writeFileSync(join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
if (opt.json) process.stdout.write(`${JSON.stringify(manifest)}\n`);
else {
  say(`wattsplit-agent ${version}: ${relative(root, tree)}/`);
  say(`  unpacked ${(unpackedBytes / 1e6).toFixed(2)} MB in ${files.length} files (bundle ${(manifest.bundleBytes / 1e6).toFixed(2)} MB from ${manifest.bundledInputs} modules; native: ${Object.entries(natives).map(([k, v]) => `${k}@${v}`).join(', ')})`);
  if (manifest.tarball) say(`  ${relative(root, join(outDir, manifest.tarball))} ${(manifest.tarballBytes / 1e6).toFixed(2)} MB, sha256 ${manifest.sha256}`);
}
