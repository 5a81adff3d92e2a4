-- The durable job queue (Sources/JobQueue). Every webhook becomes a row here; workers claim rows
-- with FOR UPDATE SKIP LOCKED. See docs/architecture.md "Job queue".
CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text        NOT NULL,
    payload          jsonb       NOT NULL DEFAULT '{}',
    -- available: waiting for run_at; running: leased; completed | dead | cancelled: finished.
    state            text        NOT NULL DEFAULT 'available'
                     CHECK (state IN ('available', 'running', 'completed', 'dead', 'cancelled')),
    priority         smallint    NOT NULL DEFAULT 0,          -- lower runs first
    run_at           timestamptz NOT NULL DEFAULT now(),
    attempt          integer     NOT NULL DEFAULT 0,          -- attempts started so far
    max_attempts     integer     NOT NULL DEFAULT 20 CHECK (max_attempts > 0),
    unique_key       text,                                    -- duplicates dropped until pruned
    serial_key       text,                                    -- one running per key, in id order
    locked_by        text,
    lease_expires_at timestamptz,
    errors           jsonb       NOT NULL DEFAULT '[]',       -- one object per failed attempt
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempted_at     timestamptz,
    finished_at      timestamptz,
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
);

-- Deduplication: INSERT … ON CONFLICT DO NOTHING, never check-then-insert. Covers finished rows
-- too, so a Telegram update redelivered after it was processed is still dropped.
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key) WHERE unique_key IS NOT NULL;
-- The claim scans only claimable rows, in claim order.
CREATE INDEX jobs_claimable ON jobs (priority, run_at, id) WHERE state = 'available';
-- "Is an earlier job of this serial key still pending?"
CREATE INDEX jobs_serial_pending ON jobs (serial_key, id)
    WHERE serial_key IS NOT NULL AND state IN ('available', 'running');
-- Rescue of expired leases.
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE state = 'running';
-- Pruning finished rows.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('completed', 'dead', 'cancelled');
