#!/usr/bin/env node
// JSON schemas for kubeconform, for every built-in Kubernetes kind, generated offline from the OpenAPI
// document in the k8s.io/kubernetes Go module (api/openapi-spec/swagger.json), fetched with
// `go mod download` (the Go module proxy; kubeconform's default schema source on GitHub is not reachable
// from CI machines here). Layout as kubeconform's -schema-location template
// "<dir>/{{ .ResourceKind }}{{ .KindSuffix }}.json" expects; definitions shared in _definitions.json.
// As openapi2jsonschema does: IntOrString and Quantity accept a string or a number.
//   node scripts/k8s-schemas.mjs [--k8s v1.31.4] [--out .tools/k8s-schemas/v1.31.4]   prints the directory
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({ options: { k8s: { type: 'string', default: 'v1.31.4' }, out: { type: 'string' } } });
const out = resolve(root, opt.out ?? `.tools/k8s-schemas/${opt.k8s}`);
if (!existsSync(join(out, '_definitions.json'))) {
  const dl = JSON.parse(execFileSync('go', ['mod', 'download', '-json', `k8s.io/kubernetes@${opt.k8s}`], { encoding: 'utf8', env: { ...process.env, GOFLAGS: '-mod=mod' }, cwd: root }));
  if (dl.Error) throw new Error(`go mod download k8s.io/kubernetes@${opt.k8s}: ${dl.Error}`);
  const swagger = JSON.parse(readFileSync(join(dl.Dir, 'api/openapi-spec/swagger.json'), 'utf8'));
  const defs = swagger.definitions;
  const stringOrNumber = (d) => ({ description: d.description, oneOf: [{ type: 'string' }, { type: 'number' }] });
  defs['io.k8s.apimachinery.pkg.util.intstr.IntOrString'] = stringOrNumber(defs['io.k8s.apimachinery.pkg.util.intstr.IntOrString']);
  defs['io.k8s.apimachinery.pkg.api.resource.Quantity'] = stringOrNumber(defs['io.k8s.apimachinery.pkg.api.resource.Quantity']);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, '_definitions.json'), JSON.stringify({ definitions: defs }));
  let n = 0;
  for (const [name, def] of Object.entries(defs)) {
    for (const gvk of def['x-kubernetes-group-version-kind'] ?? []) {
      const group = gvk.group ? `-${gvk.group.split('.')[0]}` : '';
      const file = `${gvk.kind.toLowerCase()}${group}-${gvk.version}.json`;
      const text = JSON.stringify({ ...def, $schema: 'http://json-schema.org/draft-07/schema#' }).replaceAll('"#/definitions/', '"_definitions.json#/definitions/');
      writeFileSync(join(out, file), text);
      n++;
    }
    void name;
  }
  process.stderr.write(`k8s-schemas: ${n} kinds from k8s.io/kubernetes@${opt.k8s}\n`);
}
process.stdout.write(`${out}\n`);
