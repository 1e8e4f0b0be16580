/**
 * VM workload classes: how much power one busy core draws, and what an agent can observe (IPC, LLC
 * misses, memory, block/net I/O, GPU use). The numbers are chosen so classes differ both in energy per
 * CPU-second (what the CPU-share baseline gets wrong) and in observable signature (what lets a learned
 * model tell them apart).
 */
export type VmClass = 'ai_training' | 'database' | 'web' | 'batch' | 'idle';

export const VM_CLASSES: readonly VmClass[] = Object.freeze(['ai_training', 'database', 'web', 'batch', 'idle']);

export interface VmClassProfile {
  /** Package power per busy vCPU core at the host's nominal operating point (g(u) = 1), watts. */
  coreW: number;
  /** Instructions per cycle, mean. */
  ipc: number;
  /** LLC references and misses per 1000 instructions. */
  llcRefPki: number;
  llcMissPki: number;
  /** memory.current as a fraction of reserved memory. */
  memFrac: number;
  /** Block read / write MB/s at full activity. */
  readMBs: number;
  writeMBs: number;
  /** Guest network receive / transmit MB/s at full activity. */
  rxMBs: number;
  txMBs: number;
  vcpus: readonly number[];
  memoryGiB: readonly number[];
}

export const CLASS_PROFILES: Readonly<Record<VmClass, VmClassProfile>> = Object.freeze({
  // GPU-heavy: the CPU feeds the GPU (data loading, launches); modest CPU power per core.
  ai_training: { coreW: 3.0, ipc: 1.4, llcRefPki: 10, llcMissPki: 3, memFrac: 0.7, readMBs: 60, writeMBs: 20, rxMBs: 2, txMBs: 2, vcpus: [8, 16], memoryGiB: [64, 128] },
  // I/O- and memory-heavy: low IPC, many LLC misses (DRAM energy), steady block I/O.
  database: { coreW: 3.4, ipc: 0.6, llcRefPki: 30, llcMissPki: 14, memFrac: 0.85, readMBs: 90, writeMBs: 35, rxMBs: 8, txMBs: 15, vcpus: [4, 8], memoryGiB: [32, 64] },
  // Light and bursty, network-bound, low power per CPU-second.
  web: { coreW: 2.0, ipc: 1.0, llcRefPki: 12, llcMissPki: 2, memFrac: 0.35, readMBs: 1, writeMBs: 0.5, rxMBs: 25, txMBs: 70, vcpus: [2, 4], memoryGiB: [4, 8] },
  // CPU-bound, AVX-dense: high IPC, high power per CPU-second.
  batch: { coreW: 5.8, ipc: 2.6, llcRefPki: 4, llcMissPki: 0.4, memFrac: 0.5, readMBs: 5, writeMBs: 3, rxMBs: 0.5, txMBs: 0.5, vcpus: [8, 16], memoryGiB: [16, 32] },
  idle: { coreW: 2.0, ipc: 0.8, llcRefPki: 8, llcMissPki: 1, memFrac: 0.15, readMBs: 0.05, writeMBs: 0.1, rxMBs: 0.01, txMBs: 0.01, vcpus: [2, 4], memoryGiB: [4, 8] },
});
