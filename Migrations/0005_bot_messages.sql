-- Messages the bot keeps editing in place (e.g. one photo-progress message per avatar), by tag.
CREATE TABLE bot_messages (
    chat_id     bigint NOT NULL,
    tag         text   NOT NULL,
    message_id  bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, tag)
);
