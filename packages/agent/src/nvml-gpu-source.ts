/**
 * NvmlGpuSource: NVML through FFI (koffi) to libnvidia-ml.so.1, no native build step.
 *
 * NVML API reference (nvml.h), the calls used:
 *   nvmlReturn_t nvmlInit_v2(void); nvmlShutdown(void)
 *   nvmlDeviceGetCount_v2(unsigned int *deviceCount)
 *   nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
 *   nvmlDeviceGetName(nvmlDevice_t, char *name, unsigned int length)            NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
 *   nvmlDeviceGetUUID(nvmlDevice_t, char *uuid, unsigned int length)            NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
 *   nvmlDeviceGetPciInfo_v3(nvmlDevice_t, nvmlPciInfo_t *pci)                   busId "00000000:17:00.0"
 *   nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t, unsigned long long *mJ)    Volta+, mJ since driver load
 *   nvmlDeviceGetPowerUsage(nvmlDevice_t, unsigned int *mW)
 *   nvmlDeviceGetUtilizationRates(nvmlDevice_t, nvmlUtilization_t *{gpu, memory})
 *   nvmlDeviceGetClockInfo(nvmlDevice_t, nvmlClockType_t, unsigned int *MHz)    NVML_CLOCK_SM 1, NVML_CLOCK_MEM 2
 *   nvmlDeviceGetTemperature(nvmlDevice_t, nvmlTemperatureSensors_t, unsigned int *C)   NVML_TEMPERATURE_GPU 0
 *   nvmlDeviceGetProcessUtilization(nvmlDevice_t, nvmlProcessUtilizationSample_t *samples,
 *       unsigned int *count, unsigned long long lastSeenTimeStamp)   samples newer than lastSeenTimeStamp (µs);
 *       call with samples NULL to get the count (NVML_ERROR_INSUFFICIENT_SIZE 7); NVML_ERROR_NOT_FOUND 6 = none
 *   nvmlDeviceGetSamples(nvmlDevice_t, nvmlSamplingType_t type, unsigned long long lastSeenTimeStamp,
 *       nvmlValueType_t *sampleValType, unsigned int *sampleCount, nvmlSample_t *samples)
 *       "Gets recent samples for the GPU ... based on type"; NVML_GPU_UTILIZATION_SAMPLES 1: the device's
 *       utilisation per driver sample period; samples newer than lastSeenTimeStamp (µs, the driver's clock);
 *       call with samples NULL to get the buffer size; NVML_ERROR_NOT_FOUND 6 = none (also while the GPU
 *       idles: the buffer runs dry). nvmlSample_t { unsigned long long timeStamp; nvmlValue_t sampleValue; }
 *       (16 bytes, nvmlValue_t a union of 8 bytes read by sampleValType: DOUBLE 0, UNSIGNED_INT 1,
 *       UNSIGNED_LONG 2, UNSIGNED_LONG_LONG 3, SIGNED_LONG_LONG 4, SIGNED_INT 5, UNSIGNED_SHORT 6).
 *       NOT_SUPPORTED or an old driver without the symbol: `utilSamples` is left out of the reading.
 *   nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t, unsigned int *count, nvmlProcessInfo_t *infos)
 *   nvmlDeviceGetMigMode(nvmlDevice_t, unsigned int *current, unsigned int *pending)  NVML_DEVICE_MIG_ENABLE 1
 * When the library cannot be loaded or nvmlInit fails, `open` throws SENSOR_UNAVAILABLE and the caller
 * runs without GPUs, saying so once. A single call that is NOT_SUPPORTED on a GPU (3) leaves that field 0.
 */
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';
import { WattsplitError, type GpuProcessUtilSample, type GpuReading, type GpuRunningProcess, type GpuSource, type GpuUtilSample, type Logger } from '@wattsplit/wire';

const NVML_SUCCESS = 0;
const NVML_ERROR_NOT_SUPPORTED = 3;
const NVML_ERROR_NOT_FOUND = 6;
const NVML_ERROR_INSUFFICIENT_SIZE = 7;
const NVML_GPU_UTILIZATION_SAMPLES = 1;
const NVML_SAMPLE_SIZE = 16; // sizeof(nvmlSample_t): timeStamp u64 + nvmlValue_t (8-byte union)

/** koffi is loaded on first use only (it costs ~7 MB of RSS), so hosts without NVML/PMU never load it. */
let koffiMod: typeof Koffi | undefined;
function K(): typeof Koffi {
  koffiMod ??= createRequire(import.meta.url)('koffi') as typeof Koffi;
  return koffiMod;
}

type Fn = Koffi.KoffiFunction;

interface NvmlApi {
  init: Fn;
  shutdown: Fn;
  errorString: Fn;
  count: Fn;
  handle: Fn;
  name: Fn;
  uuid: Fn;
  pci: Fn;
  energy: Fn;
  power: Fn;
  util: Fn;
  clock: Fn;
  temp: Fn;
  procUtil: Fn;
  running: Fn;
  migMode: Fn | undefined;
  samples: Fn | undefined;
}

let typesDefined = false;
let T: { pciInfo: Koffi.IKoffiCType; utilization: Koffi.IKoffiCType; procUtilSample: Koffi.IKoffiCType; processInfo: Koffi.IKoffiCType };

function defineTypes(): void {
  if (typesDefined) return;
  typesDefined = true;
  K().pointer('nvmlDevice_t', K().opaque('nvmlDevice_st'));
  T = {
    pciInfo: K().struct('nvmlPciInfo_t', {
      busIdLegacy: K().array('char', 16, 'String'),
      domain: 'uint32',
      bus: 'uint32',
      device: 'uint32',
      pciDeviceId: 'uint32',
      pciSubSystemId: 'uint32',
      busId: K().array('char', 32, 'String'),
    }),
    utilization: K().struct('nvmlUtilization_t', { gpu: 'uint32', memory: 'uint32' }),
    procUtilSample: K().struct('nvmlProcessUtilizationSample_t', { pid: 'uint32', timeStamp: 'uint64', smUtil: 'uint32', memUtil: 'uint32', encUtil: 'uint32', decUtil: 'uint32' }),
    processInfo: K().struct('nvmlProcessInfo_t', { pid: 'uint32', usedGpuMemory: 'uint64', gpuInstanceId: 'uint32', computeInstanceId: 'uint32' }),
  };
}

function loadApi(libPath: string): NvmlApi {
  defineTypes();
  const lib = K().load(libPath);
  const f = (sig: string): Fn => lib.func(sig);
  let migMode: Fn | undefined;
  try {
    migMode = f('int nvmlDeviceGetMigMode(nvmlDevice_t device, _Out_ uint32_t *current, _Out_ uint32_t *pending)');
  } catch {
    migMode = undefined; // drivers before MIG (pre-Ampere)
  }
  let samples: Fn | undefined;
  try {
    samples = f('int nvmlDeviceGetSamples(nvmlDevice_t device, int type, uint64_t lastSeenTimeStamp, _Out_ int *sampleValType, _Inout_ uint32_t *sampleCount, void *samples)');
  } catch {
    samples = undefined; // a driver without the call: the agent sends the point read only
  }
  return {
    init: f('int nvmlInit_v2()'),
    shutdown: f('int nvmlShutdown()'),
    errorString: f('const char *nvmlErrorString(int result)'),
    count: f('int nvmlDeviceGetCount_v2(_Out_ uint32_t *count)'),
    handle: f('int nvmlDeviceGetHandleByIndex_v2(uint32_t index, _Out_ nvmlDevice_t *device)'),
    name: f('int nvmlDeviceGetName(nvmlDevice_t device, _Out_ uint8_t *name, uint32_t length)'),
    uuid: f('int nvmlDeviceGetUUID(nvmlDevice_t device, _Out_ uint8_t *uuid, uint32_t length)'),
    pci: f('int nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, _Out_ nvmlPciInfo_t *pci)'),
    energy: f('int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, _Out_ uint64_t *energy)'),
    power: f('int nvmlDeviceGetPowerUsage(nvmlDevice_t device, _Out_ uint32_t *power)'),
    util: f('int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, _Out_ nvmlUtilization_t *util)'),
    clock: f('int nvmlDeviceGetClockInfo(nvmlDevice_t device, int type, _Out_ uint32_t *clock)'),
    temp: f('int nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, _Out_ uint32_t *temp)'),
    procUtil: f('int nvmlDeviceGetProcessUtilization(nvmlDevice_t device, void *samples, _Inout_ uint32_t *count, uint64_t lastSeenTimeStamp)'),
    running: f('int nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, _Inout_ uint32_t *count, void *infos)'),
    migMode,
    samples,
  };
}

interface Dev {
  index: number;
  handle: unknown;
  name: string;
  uuid: string;
  pciBusId: string;
  lastSeenUs: bigint;
  /** Newest device-utilisation sample timestamp seen (nvmlDeviceGetSamples lastSeenTimeStamp). */
  lastUtilSeenUs: bigint;
  /** nvmlDeviceGetSamples answered NOT_SUPPORTED (or is absent): not asked again. */
  noUtilSamples: boolean;
  migProfile: string;
}

/** nvmlValue_t at `off` by its nvmlValueType_t. */
function sampleValue(buf: Buffer, off: number, type: number): number {
  switch (type) {
    case 0:
      return buf.readDoubleLE(off);
    case 2:
    case 3:
      return Number(buf.readBigUInt64LE(off));
    case 4:
      return Number(buf.readBigInt64LE(off));
    case 5:
      return buf.readInt32LE(off);
    case 6:
      return buf.readUInt16LE(off);
    default:
      return buf.readUInt32LE(off);
  }
}

function cstr(buf: Buffer): string {
  const z = buf.indexOf(0);
  return buf.subarray(0, z < 0 ? buf.length : z).toString('utf8');
}

export interface NvmlGpuSourceOptions {
  /** Library to load. Default "libnvidia-ml.so.1". */
  libPath?: string;
  logger: Logger;
}

export class NvmlGpuSource implements GpuSource {
  private readonly devs: Dev[] = [];
  private readonly unsupported = new Set<string>();

  private constructor(
    private readonly api: NvmlApi,
    private readonly log: Logger,
  ) {}

  /** Loads NVML and enumerates GPUs; throws SENSOR_UNAVAILABLE (with the reason) when NVML is absent. */
  static open(opts: NvmlGpuSourceOptions): NvmlGpuSource {
    const libPath = opts.libPath ?? 'libnvidia-ml.so.1';
    let api: NvmlApi;
    try {
      api = loadApi(libPath);
    } catch (e) {
      throw new WattsplitError('SENSOR_UNAVAILABLE', `NVML not available: cannot load ${libPath} (${(e as Error).message}); no NVIDIA driver on this host, or run with nvml off`, { cause: e, details: { lib: libPath } });
    }
    const rc = api.init() as number;
    if (rc !== NVML_SUCCESS) {
      throw new WattsplitError('SENSOR_UNAVAILABLE', `NVML not available: nvmlInit_v2 returned ${rc} (${api.errorString(rc) as string})`, { details: { lib: libPath, rc } });
    }
    const src = new NvmlGpuSource(api, opts.logger.child({ source: 'nvml' }));
    src.enumerate();
    return src;
  }

  private check(rc: number, what: string, dev?: Dev): boolean {
    if (rc === NVML_SUCCESS) return true;
    const key = `${what}:${dev?.index ?? -1}:${rc}`;
    if (!this.unsupported.has(key)) {
      this.unsupported.add(key);
      const msg = `${what} on GPU ${dev?.index ?? '-'} (${dev?.pciBusId ?? ''}) returned ${rc} (${this.api.errorString(rc) as string})${rc === NVML_ERROR_NOT_SUPPORTED ? ': field left at 0' : ''}`;
      this.log.warn({ code: rc === NVML_ERROR_NOT_SUPPORTED ? 'SENSOR_UNAVAILABLE' : 'SENSOR_READ_FAILED', rc }, msg);
    }
    return false;
  }

  private enumerate(): void {
    const cnt = [0];
    if (!this.check(this.api.count(cnt) as number, 'nvmlDeviceGetCount_v2')) return;
    for (let i = 0; i < (cnt[0] ?? 0); i++) {
      const h: unknown[] = [null];
      if (!this.check(this.api.handle(i, h) as number, 'nvmlDeviceGetHandleByIndex_v2')) continue;
      const nameBuf = Buffer.alloc(96);
      const uuidBuf = Buffer.alloc(96);
      const dev: Dev = { index: i, handle: h[0], name: '', uuid: '', pciBusId: '', lastSeenUs: 0n, lastUtilSeenUs: 0n, noUtilSamples: this.api.samples === undefined, migProfile: '' };
      if (this.check(this.api.name(dev.handle, nameBuf, 96) as number, 'nvmlDeviceGetName', dev)) dev.name = cstr(nameBuf);
      if (this.check(this.api.uuid(dev.handle, uuidBuf, 96) as number, 'nvmlDeviceGetUUID', dev)) dev.uuid = cstr(uuidBuf);
      const pci: { busId?: string } = {};
      if (this.check(this.api.pci(dev.handle, pci) as number, 'nvmlDeviceGetPciInfo_v3', dev)) dev.pciBusId = String(pci.busId ?? '');
      if (this.api.migMode) {
        const cur = [0];
        const pend = [0];
        if ((this.api.migMode(dev.handle, cur, pend) as number) === NVML_SUCCESS && cur[0] === 1) dev.migProfile = 'mig';
      }
      this.devs.push(dev);
    }
    this.log.info({ gpus: this.devs.map((d) => `${d.index} ${d.name} ${d.pciBusId}`) }, 'NVML GPUs found');
  }

  /** GPUs found at open. */
  devices(): { index: number; name: string; uuid: string; pciBusId: string; migProfile: string }[] {
    return this.devs.map(({ index, name, uuid, pciBusId, migProfile }) => ({ index, name, uuid, pciBusId, migProfile }));
  }

  read(): GpuReading[] {
    return this.devs.map((d) => this.readDevice(d));
  }

  private u32(fn: Fn, what: string, d: Dev, ...args: unknown[]): number {
    const out = [0];
    return this.check(fn(d.handle, ...args, out) as number, what, d) ? (out[0] ?? 0) : 0;
  }

  private readDevice(d: Dev): GpuReading {
    const e: bigint[] = [0n];
    const energyOk = this.check(this.api.energy(d.handle, e) as number, 'nvmlDeviceGetTotalEnergyConsumption', d);
    const util: { gpu?: number; memory?: number } = {};
    const utilOk = this.check(this.api.util(d.handle, util) as number, 'nvmlDeviceGetUtilizationRates', d);
    const utilSamples = this.readUtilSamples(d);
    return {
      index: d.index,
      pciBusId: d.pciBusId,
      name: d.name,
      uuid: d.uuid,
      energyMj: energyOk ? Number(e[0] ?? 0) : 0,
      powerMw: this.u32(this.api.power, 'nvmlDeviceGetPowerUsage', d),
      gpuUtilPct: utilOk ? (util.gpu ?? 0) : 0,
      memUtilPct: utilOk ? (util.memory ?? 0) : 0,
      smClockMhz: this.u32(this.api.clock, 'nvmlDeviceGetClockInfo(SM)', d, 1),
      memClockMhz: this.u32(this.api.clock, 'nvmlDeviceGetClockInfo(MEM)', d, 2),
      tempC: this.u32(this.api.temp, 'nvmlDeviceGetTemperature', d, 0),
      processUtil: this.readProcessUtil(d),
      ...(utilSamples ? { utilSamples } : {}),
      running: this.readRunning(d),
      migProfile: d.migProfile,
    };
  }

  /** Device-utilisation samples newer than the last seen; undefined when the driver does not offer them. */
  private readUtilSamples(d: Dev): GpuUtilSample[] | undefined {
    const fn = this.api.samples;
    if (!fn || d.noUtilSamples) return undefined;
    const type = [0];
    const count = [0];
    let rc = fn(d.handle, NVML_GPU_UTILIZATION_SAMPLES, d.lastUtilSeenUs, type, count, null) as number;
    if (rc === NVML_ERROR_NOT_FOUND) return []; // none newer than lastSeen (the buffer runs dry while idle)
    if (rc === NVML_ERROR_NOT_SUPPORTED) d.noUtilSamples = true;
    if (rc !== NVML_SUCCESS && rc !== NVML_ERROR_INSUFFICIENT_SIZE) {
      this.check(rc, 'nvmlDeviceGetSamples(GPU_UTILIZATION)', d);
      return d.noUtilSamples ? undefined : [];
    }
    const n = count[0] ?? 0;
    if (n === 0) return [];
    const buf = Buffer.alloc(NVML_SAMPLE_SIZE * n);
    count[0] = n;
    rc = fn(d.handle, NVML_GPU_UTILIZATION_SAMPLES, d.lastUtilSeenUs, type, count, buf) as number;
    if (rc === NVML_ERROR_NOT_FOUND) return [];
    if (!this.check(rc, 'nvmlDeviceGetSamples(GPU_UTILIZATION)', d)) return [];
    const got = Math.min(n, count[0] ?? 0);
    const out: GpuUtilSample[] = [];
    for (let i = 0; i < got; i++) {
      const off = i * NVML_SAMPLE_SIZE;
      const ts = buf.readBigUInt64LE(off);
      const v = sampleValue(buf, off + 8, type[0] ?? 1);
      if (ts <= d.lastUtilSeenUs && d.lastUtilSeenUs > 0n) continue;
      out.push({ timeStampUs: Number(ts), utilPct: v });
    }
    for (const x of out) if (BigInt(x.timeStampUs) > d.lastUtilSeenUs) d.lastUtilSeenUs = BigInt(x.timeStampUs);
    return out;
  }

  private readProcessUtil(d: Dev): GpuProcessUtilSample[] {
    const count = [0];
    let rc = this.api.procUtil(d.handle, null, count, d.lastSeenUs) as number;
    if (rc === NVML_ERROR_NOT_FOUND) return []; // no samples newer than lastSeen
    if (rc !== NVML_ERROR_INSUFFICIENT_SIZE && rc !== NVML_SUCCESS) {
      this.check(rc, 'nvmlDeviceGetProcessUtilization', d);
      return [];
    }
    const n = count[0] ?? 0;
    if (n === 0) return [];
    const size = K().sizeof(T.procUtilSample);
    const buf = Buffer.alloc(size * n);
    rc = this.api.procUtil(d.handle, buf, count, d.lastSeenUs) as number;
    if (rc === NVML_ERROR_NOT_FOUND) return [];
    if (!this.check(rc, 'nvmlDeviceGetProcessUtilization', d)) return [];
    const got = Math.min(n, count[0] ?? 0);
    const out: GpuProcessUtilSample[] = [];
    for (let i = 0; i < got; i++) {
      const s = K().decode(buf, i * size, T.procUtilSample) as { pid: number; timeStamp: number | bigint; smUtil: number; memUtil: number; encUtil: number; decUtil: number };
      const ts = BigInt(s.timeStamp);
      if (ts > d.lastSeenUs) d.lastSeenUs = ts;
      out.push({ pid: s.pid, timeStampUs: Number(ts), smUtil: s.smUtil, memUtil: s.memUtil, encUtil: s.encUtil, decUtil: s.decUtil });
    }
    return out;
  }

  private readRunning(d: Dev): GpuRunningProcess[] {
    const size = K().sizeof(T.processInfo);
    let cap = 16;
    for (let attempt = 0; attempt < 4; attempt++) {
      const buf = Buffer.alloc(size * cap);
      const count = [cap];
      const rc = this.api.running(d.handle, count, buf) as number;
      if (rc === NVML_ERROR_INSUFFICIENT_SIZE) {
        cap = Math.max(cap * 2, (count[0] ?? 0) + 8);
        continue;
      }
      if (!this.check(rc, 'nvmlDeviceGetComputeRunningProcesses_v3', d)) return [];
      const out: GpuRunningProcess[] = [];
      for (let i = 0; i < (count[0] ?? 0); i++) {
        const p = K().decode(buf, i * size, T.processInfo) as { pid: number; usedGpuMemory: number | bigint };
        // NVML_VALUE_NOT_AVAILABLE (ULLONG_MAX) when the memory is not known (e.g. under WDDM / MIG without privileges)
        const mem = BigInt(p.usedGpuMemory);
        out.push({ pid: p.pid, usedGpuMemoryBytes: mem === 0xffffffffffffffffn ? 0 : Number(mem) });
      }
      return out;
    }
    return [];
  }

  close(): void {
    this.api.shutdown();
  }
}
