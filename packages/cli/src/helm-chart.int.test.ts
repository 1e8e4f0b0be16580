// The Helm chart in deploy/helm/wattsplit: `helm lint`, then `helm template | kubeconform` against the
// Kubernetes 1.31 schemas (generated offline by scripts/k8s-schemas.mjs), with the defaults (TLS gateway,
// HTTP health probes) and with plaintext gRPC (gRPC health probes) and collector autoscaling; and the
// chart refuses more collector replicas than Kafka partitions. helm and kubeconform are built from their
// Go modules by scripts/k8s-tools.sh (once, into .tools/bin); skips where Go is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './agent-artefact.fixture.js';

const chart = join(REPO_ROOT, 'deploy/helm/wattsplit');

function tools(): { bin: string; schemas: string } | string {
  const t = spawnSync('sh', [join(REPO_ROOT, 'scripts/k8s-tools.sh')], { encoding: 'utf8', timeout: 1_200_000 });
  if (t.status === 3) return 'Go is not installed: helm and kubeconform are built from Go modules (scripts/k8s-tools.sh)';
  if (t.status !== 0) return `scripts/k8s-tools.sh failed (no Go module proxy?): ${t.stderr.slice(-500)}`;
  const s = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts/k8s-schemas.mjs')], { encoding: 'utf8', timeout: 600_000 });
  if (s.status !== 0) return `scripts/k8s-schemas.mjs failed: ${s.stderr.slice(-500)}`;
  return { bin: t.stdout.trim(), schemas: s.stdout.trim() };
}
const got = tools();
const skip = typeof got === 'string' ? got : undefined;

function render(bin: string, sets: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(join(bin, 'helm'), ['template', 'ws', chart, '--namespace', 'wattsplit', '--kube-version', '1.31.4', ...sets.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

function validate(bin: string, schemas: string, manifests: string): string {
  const r = spawnSync(join(bin, 'kubeconform'), ['-summary', '-output', 'text', '-kubernetes-version', '1.31.4', '-schema-location', `${schemas}/{{ .ResourceKind }}{{ .KindSuffix }}.json`, '-'], { input: manifests, encoding: 'utf8' });
  assert.equal(r.status, 0, `kubeconform:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('helm lint passes on deploy/helm/wattsplit', { skip }, () => {
  const { bin } = got as { bin: string };
  const r = spawnSync(join(bin, 'helm'), ['lint', '--strict', '--kube-version', '1.31.4', chart], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
});

test('helm template | kubeconform: defaults (TLS, HTTP probes) and plaintext (gRPC health probes) with autoscaling', { skip }, () => {
  const { bin, schemas } = got as { bin: string; schemas: string };
  const def = render(bin, []);
  assert.equal(def.status, 0, def.err);
  const sum = validate(bin, schemas, def.out);
  assert.match(sum, /Summary: \d+ resources found .* - Valid: \d+, Invalid: 0, Errors: 0, Skipped: 0/);
  assert.match(def.out, /kind: DaemonSet/);
  assert.match(def.out, /mountPath: \/host\/sys/);
  assert.match(def.out, /httpGet: \{ path: \/healthz, port: metrics \}/);

  const plain = render(bin, ['gateway.tls.enabled=false', 'gateway.auth=none', 'collector.autoscaling.enabled=true', 'agent.tokenSecret=wattsplit-agent-token']);
  assert.equal(plain.status, 0, plain.err);
  validate(bin, schemas, plain.out);
  assert.match(plain.out, /readinessProbe: \{ grpc: \{ port: 7443 \}/, 'plaintext gateway: probed by grpc.health.v1');
  assert.match(plain.out, /kind: HorizontalPodAutoscaler/);
  assert.match(plain.out, /"tls": false/);
});

test('the chart refuses more collector replicas than Kafka partitions', { skip }, () => {
  const { bin } = got as { bin: string };
  const r = render(bin, ['kafka.partitions=4', 'collector.autoscaling.maxReplicas=8']);
  assert.notEqual(r.status, 0);
  assert.match(r.err, /maxReplicas must not exceed kafka.partitions/);
});
