-- An event written before its call to AutoShares carries a random id, by which its outcome
-- is written once AutoShares has answered; until then its outcome reads 'unknown'. Events
-- written with their outcome already known carry none (NULL ids never collide).
ALTER TABLE audit_events ADD COLUMN event_id TEXT;
CREATE UNIQUE INDEX audit_events_by_id ON audit_events (event_id);
