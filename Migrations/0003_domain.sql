-- The product's data: users, the credit ledger, avatars and their photos, generations.
-- Rules that must hold under concurrency live here, not in read-then-write code:
-- balances never go negative, a movement never applies twice, at most 20 photos and one main
-- avatar per user, and an avatar's status only moves along legal transitions.
-- See docs/architecture.md "Avatar pipeline".

CREATE TABLE users (
    id            bigint PRIMARY KEY,                 -- Telegram user id
    language      text        NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'ru')),
    first_name    text        NOT NULL DEFAULT '',
    -- Cached sum of the ledger, kept by the same statement that writes each movement.
    balance       integer     NOT NULL DEFAULT 0 CHECK (balance >= 0),
    consented_at  timestamptz,                        -- "the photos are mine / I have permission, I am 18+"
    blocked_at    timestamptz,                        -- the user blocked the bot: stop messaging
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Every credit movement, once: the reference (e.g. 'training:<avatar id>') is unique.
CREATE TABLE credit_ledger (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount      integer     NOT NULL CHECK (amount <> 0),
    reference   text        NOT NULL UNIQUE,
    reason      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_ledger_user ON credit_ledger (user_id, id DESC);

CREATE TABLE avatars (
    id               uuid PRIMARY KEY,
    user_id          bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name             text        NOT NULL CHECK (char_length(name) BETWEEN 2 AND 40),
    kind             text        NOT NULL CHECK (kind IN ('portrait', 'style')),
    gender           text        NOT NULL CHECK (gender IN ('female', 'male', 'other')),
    status           text        NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'ready', 'training', 'completed', 'failed', 'cancelled')),
    is_main          boolean     NOT NULL DEFAULT false,
    trigger_phrase   text        NOT NULL,
    photo_count      integer     NOT NULL DEFAULT 0 CHECK (photo_count BETWEEN 0 AND 20),
    -- The training as sent: model, input JSON, the price reserved, and FAL's request id.
    training_model   text,
    training_input   jsonb,
    training_price   integer,
    training_attempt integer     NOT NULL DEFAULT 0,  -- bumped by each (re)start; names the ledger references
    images_data_url  text,                            -- the uploaded ZIP, reused by a retried job
    submit_started_at timestamptz,                    -- set just before the submit call: a retry that finds it
                                                      -- and no request id must not submit again
    fal_request_id   text UNIQUE,
    submitted_at     timestamptz,
    lora_url         text,
    config_url       text,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    CHECK (status <> 'completed' OR lora_url IS NOT NULL)  -- no fabricated results: completed means a LoRA
);
CREATE INDEX avatars_user ON avatars (user_id, created_at DESC);
CREATE UNIQUE INDEX avatars_one_main ON avatars (user_id) WHERE is_main;
CREATE INDEX avatars_training ON avatars (submitted_at) WHERE status = 'training';

-- Legal moves only: draft ⇄ ready → training → completed | failed | cancelled; failed and
-- cancelled may go back to ready (retry). Anything else is a bug, refused by the database.
CREATE FUNCTION avatars_check_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> OLD.status AND NOT (
        (OLD.status, NEW.status) IN (('draft', 'ready'), ('ready', 'draft'), ('ready', 'training'),
                                     ('training', 'completed'), ('training', 'failed'), ('training', 'cancelled'),
                                     ('failed', 'ready'), ('cancelled', 'ready'))
    ) THEN
        RAISE EXCEPTION 'illegal avatar transition % -> %', OLD.status, NEW.status USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER avatars_transition BEFORE UPDATE ON avatars FOR EACH ROW EXECUTE FUNCTION avatars_check_transition();

CREATE TABLE avatar_photos (
    id              uuid PRIMARY KEY,
    avatar_id       uuid        NOT NULL REFERENCES avatars (id) ON DELETE CASCADE,
    object_key      text        NOT NULL UNIQUE,
    sha256          text        NOT NULL,
    file_unique_id  text        NOT NULL,
    format          text        NOT NULL CHECK (format IN ('jpeg', 'png', 'webp')),
    size_bytes      integer     NOT NULL,
    width           integer     NOT NULL,
    height          integer     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (avatar_id, sha256),
    UNIQUE (avatar_id, file_unique_id)
);

-- What became of every photo a user sent: the bot renders progress and reasons from here.
CREATE TABLE photo_uploads (
    avatar_id       uuid        NOT NULL REFERENCES avatars (id) ON DELETE CASCADE,
    file_unique_id  text        NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    reason          text,                              -- a message-catalogue key, never an exception's text
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (avatar_id, file_unique_id)
);

CREATE TABLE generations (
    id              uuid PRIMARY KEY,
    user_id         bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    avatar_id       uuid        REFERENCES avatars (id) ON DELETE SET NULL,
    chat_id         bigint      NOT NULL,
    prompt          text        NOT NULL CHECK (char_length(prompt) BETWEEN 3 AND 1000),
    aspect_ratio    text        NOT NULL CHECK (aspect_ratio IN ('1:1', '3:4', '4:3', '9:16', '16:9')),
    image_count     integer     NOT NULL CHECK (image_count BETWEEN 1 AND 4),
    price           integer     NOT NULL CHECK (price >= 0),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'submitted', 'completed', 'failed')),
    fal_request_id  text UNIQUE,
    seed            numeric(20, 0),                    -- FAL seeds exceed 2^63 - 1 at times
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    submitted_at    timestamptz,
    completed_at    timestamptz
);
CREATE INDEX generations_user ON generations (user_id, created_at DESC);
CREATE INDEX generations_open ON generations (submitted_at) WHERE status = 'submitted';

CREATE TABLE generated_images (
    id                uuid PRIMARY KEY,
    generation_id     uuid        NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    user_id           bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position          integer     NOT NULL,
    object_key        text        NOT NULL UNIQUE,
    width             integer     NOT NULL,
    height            integer     NOT NULL,
    telegram_file_id  text,
    favourite         boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (generation_id, position)
);
CREATE INDEX generated_images_user ON generated_images (user_id, created_at DESC);
