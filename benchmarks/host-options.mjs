// `--host-option KEY=true|false` (repeatable), shared by the accuracy benchmarks (accuracy-oos.mjs, accuracy-filter.mjs):
// the sensors it may take away from the protocol's host (docs/accuracy.md, "Run 9").
export const HOST_OPTIONS = ['perfSupported', 'dramZones', 'bmcEnergyCounter', 'cpufreq'];

/** The `--host-option` settings of argv as a partial HostSpec; throws naming the bad one. */
export function hostOptions(argv) {
  const host = {};
  argv.forEach((a, i) => {
    if (a !== '--host-option') return;
    const kv = argv[i + 1] ?? '';
    const [k, v] = [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)];
    if (!HOST_OPTIONS.includes(k) || !(v === 'true' || v === 'false')) throw new Error(`--host-option ${kv}: expected one of ${HOST_OPTIONS.join(', ')} =true|false`);
    host[k] = v === 'true';
  });
  return host;
}
