-- The last frame the collector committed per host (encoded TelemetryFrame, base64): a collector that
-- restarts, or takes over a partition, seeds its aligner with it, so the interval spanning the restart is
-- attributed instead of lost. ReplacingMergeTree(seq): the newest checkpoint wins, a replayed older one
-- never regresses it.
CREATE TABLE IF NOT EXISTS collector_checkpoints
(
    host LowCardinality(String),
    seq UInt64,
    boot_id String,
    saved_at DateTime('UTC') MATERIALIZED now(),
    frame_b64 String CODEC(ZSTD)
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY host;
