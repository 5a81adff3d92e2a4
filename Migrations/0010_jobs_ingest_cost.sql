-- What storing a webhook costs PostgreSQL, per job (measured in docs/benchmarks.md, session 9).
--
-- `payload` becomes `json`: the raw text, checked for syntax and kept byte for byte. `jsonb`
-- built a binary tree with sorted keys for every stored update, printed it back as text for
-- every claim, and sorted sampled payloads at every autoanalyze; nothing queries inside a
-- payload but one `->>` (Outbox), which `json` serves. `json` also stores a `\u0000` escape that
-- `jsonb` refused. Nothing filters on `payload` or `errors`, so ANALYZE skips them.
--
-- The keys compare as bytes (`COLLATE "C"`): they are identifiers, only ever tested for
-- equality, and the index insertions of every enqueue paid for locale-aware comparisons.
ALTER TABLE jobs
    ALTER COLUMN payload DROP DEFAULT,
    ALTER COLUMN payload TYPE json USING payload::json,
    ALTER COLUMN payload SET DEFAULT '{}',
    ALTER COLUMN payload SET STATISTICS 0,
    ALTER COLUMN errors SET STATISTICS 0,
    ALTER COLUMN unique_key TYPE text COLLATE "C",
    ALTER COLUMN serial_key TYPE text COLLATE "C";
