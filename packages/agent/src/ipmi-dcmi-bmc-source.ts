/**
 * IpmiDcmiBmcSource: whole-host power through `ipmitool dcmi power reading` (DCMI 1.5 Get Power Reading).
 * ipmitool prints, among other lines:
 *     Instantaneous power reading:                   220 Watts
 *     Average power reading over sample period:      216 Watts
 *     Power reading state is:                   activated
 * Power only (no energy counter): the BmcSampler integrates it. Without ipmitool the source is
 * unavailable and says so (once, through the sampler); extra args select a remote BMC (-I lanplus -H ...).
 * node:child_process is loaded on the first read, not on import: an agent without IPMI never loads it (and
 * the dgram module it pulls in), ≈ 0.3 MB of RSS (docs/benchmarks.md, issue 13).
 */
import { WattsplitError, type BmcReading, type BmcSource } from '@wattsplit/wire';

export function parseDcmiPowerReading(text: string): number {
  if (/Power reading state is:\s*deactivated/i.test(text)) {
    throw new WattsplitError('SENSOR_UNAVAILABLE', 'ipmitool dcmi power reading: power reading state is deactivated on this BMC (enable with: ipmitool dcmi power activate)', { details: { field: 'Power reading state' } });
  }
  const m = /Instantaneous power reading:\s*(\d+(?:\.\d+)?)\s*Watts/i.exec(text);
  if (!m) throw new WattsplitError('SENSOR_READ_FAILED', `ipmitool dcmi power reading: no "Instantaneous power reading: N Watts" line in ${JSON.stringify(text.slice(0, 200))}`, { details: { field: 'Instantaneous power reading' } });
  return Number(m[1]);
}

export interface IpmiDcmiBmcSourceOptions {
  /** Default "ipmitool". */
  command?: string;
  /** Inserted before "dcmi power reading", e.g. ["-I", "lanplus", "-H", "bmc", "-U", "u", "-f", "pwfile"]. */
  extraArgs?: string[];
  timeoutMs?: number;
}

export class IpmiDcmiBmcSource implements BmcSource {
  constructor(private readonly opts: IpmiDcmiBmcSourceOptions = {}) {}

  async read(): Promise<BmcReading> {
    const cmd = this.opts.command ?? 'ipmitool';
    const args = [...(this.opts.extraArgs ?? []), 'dcmi', 'power', 'reading'];
    const { execFile } = await import('node:child_process');
    return new Promise((resolve, reject) => {
      execFile(cmd, args, { timeout: this.opts.timeoutMs ?? 5000, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') return reject(new WattsplitError('SENSOR_UNAVAILABLE', `IPMI unsupported here: ${cmd} not found (install ipmitool, or configure Redfish instead)`, { details: { command: cmd } }));
          return reject(new WattsplitError('SENSOR_READ_FAILED', `${cmd} ${args.join(' ')} failed: ${(stderr || err.message).trim()}`, { cause: err, retriable: true, details: { command: cmd } }));
        }
        try {
          resolve({ energyJoules: undefined, powerWatts: parseDcmiPowerReading(stdout) });
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
    });
  }
}
