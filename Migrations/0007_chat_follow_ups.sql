-- Which update last changed a chat, and what it left to do after its transaction (start a
-- training, request a generation, cancel, remove a photo, answer the button). A worker that dies
-- between that commit and those steps leaves them here; the rerun of the same update does them
-- instead of handling the update again against the new step.
ALTER TABLE chat_state
    ADD COLUMN last_update text,
    ADD COLUMN follow_ups  jsonb;
