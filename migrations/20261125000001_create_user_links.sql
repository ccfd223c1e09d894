-- Which AutoShares user each first-party subject is; a token's `sub` is looked up here
-- (docs/api.md).
-- Written in SQL that both SQLite and PostgreSQL accept.
CREATE TABLE user_links (
    subject TEXT PRIMARY KEY,
    autoshares_user_id BIGINT NOT NULL CHECK (autoshares_user_id > 0),
    updated_at BIGINT NOT NULL
);
