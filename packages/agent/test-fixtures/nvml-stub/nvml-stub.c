/* A stand-in libnvidia-ml.so.1 with the real NVML ABI (struct layouts and signatures from nvml.h) and
 * fixed, known values: two GPUs, energy rising by 1000 mJ per read, per-process samples newer than
 * lastSeenTimeStamp, device-utilisation samples (nvmlDeviceGetSamples) that the driver buffers six per read
 * on GPU 0 (twelve in all, then none: an idle GPU's buffer runs dry) and does not support on GPU 1.
 * Built by nvml-gpu-source.test.ts with gcc to check the FFI bindings. */
#include <string.h>
#include <stdio.h>
typedef struct nvmlDevice_st { int idx; } *nvmlDevice_t;
typedef struct { char busIdLegacy[16]; unsigned int domain, bus, device, pciDeviceId, pciSubSystemId; char busId[32]; } nvmlPciInfo_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned int pid; unsigned long long timeStamp; unsigned int smUtil, memUtil, encUtil, decUtil; } nvmlProcessUtilizationSample_t;
typedef struct { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId, computeInstanceId; } nvmlProcessInfo_t;
typedef union { double dVal; unsigned int uiVal; unsigned long ulVal; unsigned long long ullVal; signed long long sllVal; } nvmlValue_t;
typedef struct { unsigned long long timeStamp; nvmlValue_t sampleValue; } nvmlSample_t;
static struct nvmlDevice_st devs[2] = {{0}, {1}};
static unsigned long long energy[2] = {5000000000ULL, 7000000000ULL};
static int inited = 0;
int nvmlInit_v2(void) { inited = 1; return 0; }
int nvmlShutdown(void) { inited = 0; return 0; }
const char *nvmlErrorString(int r) { return r == 3 ? "Not Supported" : r == 6 ? "Not Found" : "Unknown Error"; }
int nvmlDeviceGetCount_v2(unsigned int *c) { *c = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) { if (i > 1) return 2; *d = &devs[i]; return 0; }
int nvmlDeviceGetName(nvmlDevice_t d, char *n, unsigned int len) { snprintf(n, len, "NVIDIA H100 80GB HBM3"); return 0; }
int nvmlDeviceGetUUID(nvmlDevice_t d, char *n, unsigned int len) { snprintf(n, len, "GPU-stub-%d", d->idx); return 0; }
int nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *p) { memset(p, 0, sizeof *p); p->bus = 0x17 + d->idx; snprintf(p->busId, 32, "00000000:%02X:00.0", 0x17 + d->idx); return 0; }
int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *e) { energy[d->idx] += 1000; *e = energy[d->idx]; return 0; }
int nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *p) { *p = 350000 + d->idx; return 0; }
int nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) { u->gpu = 97; u->memory = 40 + d->idx; return 0; }
int nvmlDeviceGetClockInfo(nvmlDevice_t d, int t, unsigned int *c) { *c = t == 1 ? 1980 : 2619; return 0; }
int nvmlDeviceGetTemperature(nvmlDevice_t d, int s, unsigned int *c) { if (d->idx == 1) return 3; *c = 61; return 0; }
int nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *cur, unsigned int *pend) { *cur = d->idx == 1; *pend = 0; return 0; }
int nvmlDeviceGetProcessUtilization(nvmlDevice_t d, nvmlProcessUtilizationSample_t *s, unsigned int *count, unsigned long long last) {
  /* two samples per device at fixed times; only those newer than last are returned */
  nvmlProcessUtilizationSample_t all[2] = {{404, 1700000000000001ULL, 90, 30, 0, 0}, {405, 1700000000000002ULL, 10, 70, 1, 2}};
  unsigned int n = 0; nvmlProcessUtilizationSample_t out[2];
  for (int i = 0; i < 2; i++) if (all[i].timeStamp > last) out[n++] = all[i];
  if (n == 0) return 6;
  if (s == NULL || *count < n) { *count = n; return 7; }
  memcpy(s, out, n * sizeof *s); *count = n; return 0;
}
int nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_t *p) {
  if (*count < 2) { *count = 2; return 7; }
  p[0].pid = 404; p[0].usedGpuMemory = 1073741824ULL; p[1].pid = 405; p[1].usedGpuMemory = 0xFFFFFFFFFFFFFFFFULL;
  *count = 2; return 0;
}
int nvmlDeviceGetSamples(nvmlDevice_t d, int type, unsigned long long last, int *valType, unsigned int *count, nvmlSample_t *s) {
  /* GPU 0: sample i at 1700000000100000 + 166666 i µs with utilisation (i * 37) % 101; the driver has
   * 6 per energy read so far (at most 12); only those newer than last are returned */
  if (d->idx == 1) return 3;
  if (type != 1) return 2;
  unsigned long long reads = (energy[0] - 5000000000ULL) / 1000;
  unsigned int avail = reads * 6 > 12 ? 12 : (unsigned int)(reads * 6), n = 0;
  nvmlSample_t out[12];
  for (unsigned int i = 0; i < avail; i++) {
    unsigned long long ts = 1700000000100000ULL + 166666ULL * i;
    if (ts <= last) continue;
    out[n].timeStamp = ts; out[n].sampleValue.ullVal = 0; out[n].sampleValue.uiVal = (i * 37) % 101; n++;
  }
  *valType = 1;
  if (n == 0) return 6;
  if (s == NULL) { *count = n; return 0; }
  if (*count < n) { *count = n; return 7; }
  memcpy(s, out, n * sizeof *s); *count = n; return 0;
}
