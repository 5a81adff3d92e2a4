-- rate_limit_acquire (0008), two changes. Same rule (GCRA over all keys, all or nothing), same
-- lock order.
-- 1. No INSERT … ON CONFLICT on every call. A key's row exists after its first use, yet each call
--    inserted all its keys first, a statement of its own with an arbiter probe per key, on every
--    Telegram send. Now a sorted call locks each key as it reads it and inserts only a key it did
--    not find; the unsorted form is 0008's.
-- 2. "Now" is read once the locks are held. It was read when the call began, so a call that
--    waited for another's lock judged by a stale clock: it could be refused a token that was
--    free by then, with a retry time already past (RateLimiterTests, on a loaded machine).
CREATE OR REPLACE FUNCTION rate_limit_acquire(p_keys text[], p_intervals float8[], p_bursts int[]) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    now_ts   timestamptz;
    n        int := coalesce(array_length(p_keys, 1), 0);
    sorted   boolean := true;
    current  timestamptz;
    start_ts timestamptz;
    earliest timestamptz;
    retry    timestamptz;
    currents timestamptz[] := '{}';
    new_tats timestamptz[] := '{}';
BEGIN
    -- Lock in key order, so two callers wanting the same keys never deadlock. RateLimiter passes
    -- the keys sorted, so each is locked as it is read; any other order is locked all at once first.
    FOR i IN 2 .. n LOOP
        IF NOT p_keys[i - 1] < p_keys[i] THEN sorted := false; END IF;
    END LOOP;
    IF NOT sorted THEN
        INSERT INTO rate_limits (key, tat) SELECT unnest(p_keys), clock_timestamp() ON CONFLICT (key) DO NOTHING;
        PERFORM 1 FROM rate_limits WHERE key = ANY (p_keys) ORDER BY key FOR UPDATE;
    END IF;
    FOR i IN 1 .. n LOOP
        SELECT tat INTO current FROM rate_limits WHERE key = p_keys[i] FOR UPDATE;
        IF NOT FOUND THEN
            -- First use (or a concurrent first use: then its row is locked and read below).
            INSERT INTO rate_limits (key, tat) VALUES (p_keys[i], clock_timestamp()) ON CONFLICT (key) DO NOTHING;
            SELECT tat INTO current FROM rate_limits WHERE key = p_keys[i] FOR UPDATE;
        END IF;
        currents := currents || current;
    END LOOP;
    now_ts := clock_timestamp();
    FOR i IN 1 .. n LOOP
        start_ts := greatest(currents[i], now_ts);
        earliest := start_ts - make_interval(secs => p_intervals[i] * (p_bursts[i] - 1));
        IF earliest > now_ts THEN
            retry := greatest(retry, earliest);
        END IF;
        new_tats := new_tats || (start_ts + make_interval(secs => p_intervals[i]));
    END LOOP;
    IF retry IS NOT NULL THEN
        RETURN retry;
    END IF;
    FOR i IN 1 .. n LOOP
        UPDATE rate_limits SET tat = new_tats[i] WHERE key = p_keys[i];
    END LOOP;
    RETURN NULL;
END $$;
