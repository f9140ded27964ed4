-- Opt-in status page subscribers (double opt-in), separate from the affected
-- recipients who get the mandatory breach notice. AUTOINCREMENT: an id is
-- never reused, so an old unsubscribe link can never remove a newer subscriber.
CREATE TABLE subscribers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    email        TEXT    NOT NULL, -- validated and lower-cased by the status page
    incident     TEXT    NOT NULL DEFAULT '', -- slug, or '' for every incident
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER NOT NULL DEFAULT 0,
    UNIQUE (email, incident)
);
CREATE INDEX subscribers_confirmed ON subscribers (incident, confirmed_at);
