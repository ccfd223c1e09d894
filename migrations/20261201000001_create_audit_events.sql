-- The audit trail of phone changes (docs/operations.md "Audit trail"): one row per bind,
-- completion or unbind that passed authentication and the link lookup. Numbers only ever masked.
-- Written in SQL that both SQLite and PostgreSQL accept; rows are ordered by at_ms, then
-- by seq (the order one process wrote them in).
CREATE TABLE audit_events (
    at_ms BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    subject TEXT NOT NULL,
    autoshares_user_id BIGINT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    phone_number TEXT,
    country TEXT,
    client_address TEXT,
    request_id TEXT NOT NULL
);
CREATE INDEX audit_events_by_subject ON audit_events (subject, at_ms);
CREATE INDEX audit_events_by_time ON audit_events (at_ms);
