-- hyperswap's journal: one row per plan, its tables, their backfill ranges, and an
-- event log. Created once per database; every statement is idempotent. The schema
-- itself is created by journal::ensure only when missing: CREATE SCHEMA IF NOT EXISTS
-- would demand CREATE on the database even when a DBA created the schema for us.
COMMENT ON SCHEMA hyperswap IS 'hyperswap journal (schema version 1): plans, tables, backfill ranges, events, and the copy trigger functions';

CREATE TABLE IF NOT EXISTS hyperswap.plans (
    name             text PRIMARY KEY,
    plan_sha256      text        NOT NULL,
    plan_text        text        NOT NULL,
    phase            text        NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    cutover_at       timestamptz,
    -- The exact SQL `hyperswap rollback` runs, written by the cutover transaction.
    reverse_sql      text,
    parity_passed_at timestamptz,
    parity_digest    text,
    -- The digest of the parity pass the cutover went ahead on, for checking later.
    cutover_parity_digest text
);

-- Columns added since the journal was first released.
ALTER TABLE hyperswap.plans ADD COLUMN IF NOT EXISTS cutover_parity_digest text;

CREATE TABLE IF NOT EXISTS hyperswap.tables (
    plan_name   text   NOT NULL REFERENCES hyperswap.plans (name) ON DELETE CASCADE,
    ord         int    NOT NULL,
    source      text   NOT NULL,
    target      text   NOT NULL,
    retired     text   NOT NULL,
    key_column  text   NOT NULL,
    time_column text   NOT NULL,
    -- Estimated source rows when the backfill started, for progress and ETA.
    rows_total  bigint,
    PRIMARY KEY (plan_name, ord)
);

-- One plan per table at a time, enforced where two plans started at the same instant
-- meet: the second one's INSERT waits for the first and then fails.
CREATE UNIQUE INDEX IF NOT EXISTS tables_source_once ON hyperswap.tables (source);

-- What each table carried besides columns and indexes when the new one was made
-- (sql/definitions.sql), to tell later changes on one side apart.
ALTER TABLE hyperswap.tables ADD COLUMN IF NOT EXISTS source_definitions text[];
ALTER TABLE hyperswap.tables ADD COLUMN IF NOT EXISTS target_definitions text[];

-- The id change capture's objects of the table are named after (the source's OID when
-- the plan started); NULL for plans of builds that named them after the table.
ALTER TABLE hyperswap.tables ADD COLUMN IF NOT EXISTS capture_id bigint;

-- Backfill work, as key ranges: a key value is the text form of each key column, so any
-- key type and composite keys fit. A batch and the advance of its range's cursor commit
-- in one transaction.
CREATE TABLE IF NOT EXISTS hyperswap.ranges (
    plan_name   text        NOT NULL,
    ord         int         NOT NULL,
    range_no    int         NOT NULL,
    lo          text[],                    -- inclusive lower bound; NULL: from the start
    hi          text[]      NOT NULL,      -- inclusive upper bound, captured at start
    cursor      text[],                    -- last key copied; NULL: none yet
    rows_copied bigint      NOT NULL DEFAULT 0,
    batches     bigint      NOT NULL DEFAULT 0,
    done        boolean     NOT NULL DEFAULT false,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_name, ord, range_no),
    FOREIGN KEY (plan_name, ord) REFERENCES hyperswap.tables (plan_name, ord) ON DELETE CASCADE
);

-- Journals of hyperswap 0.1 kept single-column bounds as text.
DO $$
BEGIN
    IF (SELECT atttypid FROM pg_catalog.pg_attribute
        WHERE attrelid = 'hyperswap.ranges'::pg_catalog.regclass AND attname = 'hi') = 'pg_catalog.text'::pg_catalog.regtype THEN
        ALTER TABLE hyperswap.ranges
            ALTER COLUMN lo TYPE text[] USING CASE WHEN lo IS NULL THEN NULL ELSE ARRAY[lo] END,
            ALTER COLUMN hi TYPE text[] USING CASE WHEN hi = '' THEN '{}'::text[] ELSE ARRAY[hi] END,
            ALTER COLUMN cursor TYPE text[] USING CASE WHEN cursor IS NULL THEN NULL ELSE ARRAY[cursor] END;
    END IF;
END
$$;

-- The change logs' catch-up, sampled while a plan runs (every few seconds, per table):
-- what waits, the log's size, what arrives and what is replayed per second, and whether
-- the replay keeps up; for `status` and the plan's report.
CREATE TABLE IF NOT EXISTS hyperswap.catch_up (
    plan_name      text        NOT NULL,
    ord            int         NOT NULL,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    phase          text        NOT NULL,
    waiting        bigint      NOT NULL,
    log_bytes      bigint      NOT NULL,
    arrived_per_s  float8      NOT NULL,
    replayed_per_s float8      NOT NULL,
    converging     boolean     NOT NULL,
    FOREIGN KEY (plan_name, ord) REFERENCES hyperswap.tables (plan_name, ord) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS catch_up_plan_idx ON hyperswap.catch_up (plan_name, ord, at);

CREATE TABLE IF NOT EXISTS hyperswap.events (
    id        bigserial PRIMARY KEY,
    plan_name text        NOT NULL,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    phase     text        NOT NULL,
    message   text        NOT NULL
);
CREATE INDEX IF NOT EXISTS events_plan_idx ON hyperswap.events (plan_name, id);

-- Parity runs and their per-range results: an interrupted run resumes, `status` shows
-- when parity last passed, and the digest of a passing run is kept with the cutover.
CREATE TABLE IF NOT EXISTS hyperswap.parity_runs (
    id          bigserial PRIMARY KEY,
    plan_name   text        NOT NULL REFERENCES hyperswap.plans (name) ON DELETE CASCADE,
    phase       text        NOT NULL,      -- the plan's phase: which way the copy runs
    bounds      text        NOT NULL,      -- JSON: per table, the range boundaries
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    equal       boolean,
    digest      text
);

CREATE TABLE IF NOT EXISTS hyperswap.parity_ranges (
    run_id      bigint      NOT NULL REFERENCES hyperswap.parity_runs (id) ON DELETE CASCADE,
    ord         int         NOT NULL,
    range_no    int         NOT NULL,
    live_rows   bigint      NOT NULL,
    live_sum    text        NOT NULL,
    live_xor    bigint      NOT NULL,
    mirror_rows bigint      NOT NULL,
    mirror_sum  text        NOT NULL,
    mirror_xor  bigint      NOT NULL,
    equal       boolean     NOT NULL,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, ord, range_no)
);
