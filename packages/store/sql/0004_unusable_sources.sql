-- HostInterval.unusableSources: sources whose counters could not be used for the interval (measured 0).
ALTER TABLE host_samples ADD COLUMN unusable_sources Array(String) AFTER anomaly_count;
