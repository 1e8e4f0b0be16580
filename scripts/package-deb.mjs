#!/usr/bin/env node
// The Debian package of the agent: wattsplit-agent_<version>_amd64.deb, built with dpkg-deb from the
// artefact of scripts/package-agent.mjs (built here first unless --tree names one).
//   node scripts/package-deb.mjs [--out dist/deb] [--tree dist/agent/wattsplit-agent-<v>-linux-x64] [--json]
// Contents (FHS):
//   /usr/lib/wattsplit-agent/                      the artefact (bin/, lib/agent.mjs, lib/node_modules natives, VERSION, SHA256SUMS)
//   /usr/bin/wattsplit-agent                       -> ../lib/wattsplit-agent/bin/wattsplit-agent (relative link)
//   /lib/systemd/system/wattsplit-agent.service    deploy/debian/wattsplit-agent.service (CAP_PERFMON only)
//   /lib/udev/rules.d/90-wattsplit-rapl.rules      RAPL energy_uj group-readable by "wattsplit" (CVE-2020-8694)
//   /etc/wattsplit/agent.json                      conffile (kept on upgrade when edited, removed on purge)
//   /usr/share/doc/wattsplit-agent/{copyright,README}
// Maintainer scripts (deploy/debian/{postinst,prerm,postrm}): system user and group "wattsplit" (+ libvirt
// group where it exists), /var/lib/wattsplit, udev reload, unit enabled (started by the operator after
// editing the config on first install; restarted on upgrade when it was running); purge removes the
// spool, the state, the user and the group.
// Depends: nodejs (>= 20) (Debian 13 "trixie" ships 20.19; on Debian 12 use NodeSource's nodejs 20+).
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({ options: { out: { type: 'string' }, tree: { type: 'string' }, json: { type: 'boolean' } } });
const outDir = resolve(root, opt.out ?? 'dist/deb');
const deb = join(root, 'deploy/debian');

let tree = opt.tree ? resolve(root, opt.tree) : undefined;
if (!tree) {
  const agentOut = join(outDir, 'agent');
  const out = execFileSync(process.execPath, [join(root, 'scripts/package-agent.mjs'), '--out', agentOut, '--no-tarball', '--json'], { cwd: root, encoding: 'utf8' });
  tree = join(agentOut, JSON.parse(out.trim().split('\n').pop()).tree);
}
const version = readFileSync(join(tree, 'VERSION'), 'utf8').trim();
if (!/^[0-9][A-Za-z0-9.+~]*$/.test(version)) throw new Error(`VERSION ${JSON.stringify(version)} is not a Debian upstream version`);

const pkgRoot = join(outDir, `wattsplit-agent_${version}_amd64`);
rmSync(pkgRoot, { recursive: true, force: true });
const dir = (p, mode = 0o755) => {
  mkdirSync(join(pkgRoot, p), { recursive: true });
  chmodSync(join(pkgRoot, p), mode);
};
const file = (from, to, mode = 0o644) => {
  mkdirSync(dirname(join(pkgRoot, to)), { recursive: true });
  copyFileSync(from, join(pkgRoot, to));
  chmodSync(join(pkgRoot, to), mode);
};

cpSync(tree, join(pkgRoot, 'usr/lib/wattsplit-agent'), { recursive: true });
dir('usr/bin');
symlinkSync('../lib/wattsplit-agent/bin/wattsplit-agent', join(pkgRoot, 'usr/bin/wattsplit-agent'));
file(join(deb, 'wattsplit-agent.service'), 'lib/systemd/system/wattsplit-agent.service');
file(join(deb, '90-wattsplit-rapl.rules'), 'lib/udev/rules.d/90-wattsplit-rapl.rules');
file(join(deb, 'agent.json'), 'etc/wattsplit/agent.json');
dir('usr/share/doc/wattsplit-agent');
writeFileSync(join(pkgRoot, 'usr/share/doc/wattsplit-agent/copyright'), `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: wattsplit

Files: *
Comment: wattsplit agent; bundled third-party software and its licences: /usr/lib/wattsplit-agent/THIRD-PARTY-LICENSES.txt
`);
writeFileSync(join(pkgRoot, 'usr/share/doc/wattsplit-agent/README'), `wattsplit-agent ${version}
Configure /etc/wattsplit/agent.json (gateway address, TLS files, token), then:
  wattsplit-agent --config /etc/wattsplit/agent.json --check
  systemctl start wattsplit-agent
RAPL: /lib/udev/rules.d/90-wattsplit-rapl.rules makes energy_uj readable by group wattsplit.
`);

// DEBIAN/
dir('DEBIAN');
let kib = 0;
(function walk(d) {
  for (const e of readdirSync(d)) {
    const p = join(d, e);
    if (e === 'DEBIAN' && d === pkgRoot) continue;
    const s = statSync(p, { throwIfNoEntry: false });
    if (s?.isDirectory()) walk(p);
    else if (s) kib += Math.ceil(s.size / 1024);
  }
})(pkgRoot);
writeFileSync(join(pkgRoot, 'DEBIAN/control'), `Package: wattsplit-agent
Version: ${version}
Architecture: amd64
Maintainer: wattsplit <wattsplit@example.net>
Installed-Size: ${kib}
Depends: nodejs (>= 20), adduser
Recommends: libvirt0
Suggests: libvirt-daemon-system
Section: admin
Priority: optional
Homepage: https://wattsplit.dev
Description: wattsplit hypervisor agent (per-VM energy telemetry)
 Reads the host's energy counters (RAPL, NVML, BMC) and each VM's activity
 (libvirt, cgroups, /proc, perf) once a second and streams them over gRPC to
 the wattsplit gateway, spooling to disk while the gateway is away.
 One bundled file run by the system's Node.js; native modules for NVML (koffi)
 and libvirt load only where present.
`);
writeFileSync(join(pkgRoot, 'DEBIAN/conffiles'), '/etc/wattsplit/agent.json\n');
for (const s of ['postinst', 'prerm', 'postrm']) file(join(deb, s), `DEBIAN/${s}`, 0o755);
// md5sums of every installed file but conffiles (dpkg --verify)
const sums = [];
(function walk(d) {
  for (const e of readdirSync(d).sort()) {
    const p = join(d, e);
    const rel = relative(pkgRoot, p);
    if (rel === 'DEBIAN' || rel === 'etc') continue;
    const s = statSync(p, { throwIfNoEntry: false });
    if (!s) continue;
    if (s.isDirectory()) walk(p);
    else if (!readdirSync(dirname(p), { withFileTypes: true }).find((x) => x.name === e)?.isSymbolicLink()) sums.push(`${createHash('md5').update(readFileSync(p)).digest('hex')}  ${rel}\n`);
  }
})(pkgRoot);
writeFileSync(join(pkgRoot, 'DEBIAN/md5sums'), sums.join(''));

const debFile = join(outDir, `wattsplit-agent_${version}_amd64.deb`);
execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', pkgRoot, debFile], { stdio: ['ignore', 'pipe', 'inherit'] });
const sha = createHash('sha256').update(readFileSync(debFile)).digest('hex');
writeFileSync(`${debFile}.sha256`, `${sha}  ${relative(outDir, debFile)}\n`);
const res = { deb: debFile, version, bytes: statSync(debFile).size, installedKiB: kib, sha256: sha };
if (opt.json) process.stdout.write(`${JSON.stringify(res)}\n`);
else process.stdout.write(`${relative(root, debFile)}: ${(res.bytes / 1e6).toFixed(2)} MB, installed ${kib} KiB, sha256 ${sha}\n`);
if (!existsSync(debFile)) process.exit(1);
