-- Outbound rate limits shared by every worker process (Sources/RateLimit): one row per key
-- (a Telegram chat, or the bot as a whole) holding GCRA's theoretical arrival time.
CREATE TABLE rate_limits (
    key text PRIMARY KEY,
    tat timestamptz NOT NULL
);
