-- Models live in the store so every collector replica applies the same version (issue: fleet mode learns).
-- model_versions: one row per trained artefact. model_id (random) makes two artefacts with the same
-- version number (a broken lease) distinct rows, and an activation names the exact one it activates.
CREATE TABLE IF NOT EXISTS model_versions
(
    hardware_class LowCardinality(String),
    version UInt32,
    model_id String,
    trained_at_ms Int64,
    trained_by String,
    reason LowCardinality(String),
    window_from_ns Int64,
    window_to_ns Int64,
    intervals UInt64,
    train_seconds Float64,
    residual_rapl_w Float64,
    residual_bmc_rest_w Float64,
    drift_ratio Float64,
    model_json String CODEC(ZSTD)
)
ENGINE = ReplacingMergeTree
ORDER BY (hardware_class, version, model_id);

-- model_activations: which version applies from when. Append-only history; per class the row with the
-- highest seq is the latest decision. Intervals whose end (t1) is at or after effective_from_ns are
-- attributed with that version, so every replica, and a replay of the same interval, uses the same one.
CREATE TABLE IF NOT EXISTS model_activations
(
    hardware_class LowCardinality(String),
    seq UInt64,
    version UInt32,
    model_id String,
    effective_from_ns Int64,
    activated_at_ms Int64,
    activated_by String,
    action LowCardinality(String),
    note String
)
ENGINE = MergeTree
ORDER BY (hardware_class, seq);

-- model_leases: which collector replica trains which hardware class (see ModelStore.tryLease).
CREATE TABLE IF NOT EXISTS model_leases
(
    name String,
    holder String,
    taken_at_ms Int64,
    expires_at_ms Int64
)
ENGINE = MergeTree
ORDER BY (name, taken_at_ms)
TTL toDateTime(intDiv(taken_at_ms, 1000), 'UTC') + INTERVAL 7 DAY;

-- learner_state: online learners' state per key (a host), with the last interval seq they observed, so
-- a restarted or rebalanced collector restores them and never observes an interval twice.
CREATE TABLE IF NOT EXISTS learner_state
(
    learner LowCardinality(String),
    key String,
    seq UInt64,
    saved_at_ms Int64,
    state_json String CODEC(ZSTD)
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY (learner, key);
