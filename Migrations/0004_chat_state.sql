-- The conversation state of each chat, so a restart or another worker continues exactly where
-- the user was (the system this replaces kept it in memory and lost every wizard on restart).
CREATE TABLE chat_state (
    chat_id     bigint PRIMARY KEY,
    user_id     bigint      NOT NULL,
    state       jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
