-- GpuInterval.gpuUtilMeanPct / gpuUtilSamples: the device's mean utilisation over the interval (the agent's
-- nvmlDeviceGetSamples(NVML_GPU_UTILIZATION_SAMPLES) since its previous read) and how many samples backed it,
-- one element per gpu_devices entry; 0 samples = not reported (the point read gpu_util_pct is used).
ALTER TABLE host_samples ADD COLUMN gpu_util_mean_pct Array(Float64) AFTER gpu_util_pct;
ALTER TABLE host_samples ADD COLUMN gpu_util_mean_samples Array(UInt32) AFTER gpu_util_mean_pct;
