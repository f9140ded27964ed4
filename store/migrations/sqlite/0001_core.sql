-- Core schema: incidents and their immutable updates, recipients and
-- segments, the outbox (jobs, batches, deliveries, posts), rendered content,
-- the kill switch, poller cursors, replies, and the append-only audit log.
-- Times are integer Unix milliseconds (portable to PostgreSQL BIGINT).

CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY,
    slug        TEXT    NOT NULL UNIQUE,
    title       TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    resolved_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE updates (
    id           INTEGER PRIMARY KEY,
    incident_id  INTEGER NOT NULL REFERENCES incidents (id),
    seq          INTEGER NOT NULL,
    title        TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    audience     TEXT    NOT NULL,
    channels     TEXT    NOT NULL,
    summary      TEXT    NOT NULL DEFAULT '',
    body         TEXT    NOT NULL,
    source       TEXT    NOT NULL DEFAULT '',
    source_hash  TEXT    NOT NULL DEFAULT '',
    reply_token  TEXT    NOT NULL UNIQUE,
    published_at INTEGER NOT NULL,
    published_by TEXT    NOT NULL DEFAULT '',
    public_at    INTEGER NOT NULL DEFAULT 0, -- when it went up on the status page; 0 = not (yet)
    UNIQUE (incident_id, seq)
);
CREATE INDEX updates_public ON updates (public_at);

-- Published updates are immutable: only public_at may change, once.
CREATE TRIGGER updates_immutable
BEFORE UPDATE OF incident_id, seq, title, status, severity, audience, channels, summary, body, source, source_hash,
    reply_token, published_at, published_by ON updates
BEGIN
    SELECT RAISE(ABORT, 'published updates are immutable');
END;
CREATE TRIGGER updates_no_delete BEFORE DELETE ON updates
BEGIN
    SELECT RAISE(ABORT, 'published updates cannot be deleted');
END;

-- What each channel will send for an update, rendered once at publish time so
-- a restart sends exactly what was previewed.
CREATE TABLE renderings (
    update_id INTEGER NOT NULL REFERENCES updates (id),
    channel   TEXT    NOT NULL,
    content   TEXT    NOT NULL, -- JSON
    PRIMARY KEY (update_id, channel)
);

CREATE TABLE recipients (
    id         INTEGER PRIMARY KEY,
    email      TEXT    NOT NULL,
    email_key  TEXT    NOT NULL UNIQUE, -- lower-cased address, for de-duplication
    name       TEXT    NOT NULL DEFAULT '',
    locale     TEXT    NOT NULL DEFAULT '',
    attrs      TEXT    NOT NULL DEFAULT '{}', -- JSON object of custom CSV columns
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE segments (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE segment_members (
    segment_id   INTEGER NOT NULL REFERENCES segments (id),
    recipient_id INTEGER NOT NULL REFERENCES recipients (id),
    PRIMARY KEY (segment_id, recipient_id)
) WITHOUT ROWID;

-- One job per (update, channel). Email jobs are worked in batches; social
-- and status jobs by one leased worker at a time.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    update_id   INTEGER NOT NULL REFERENCES updates (id),
    channel     TEXT    NOT NULL,
    state       TEXT    NOT NULL, -- queued | running | done | failed
    total       INTEGER NOT NULL DEFAULT 0,
    cursor      INTEGER NOT NULL DEFAULT 0, -- batch jobs: the last recipient id handed to a batch
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL DEFAULT 0, -- not before (backoff, rate limit)
    lease_owner TEXT    NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    done_at     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (update_id, channel)
);
CREATE INDEX jobs_open ON jobs (channel, state, next_at);

-- A batch is one provider request: the job's recipients with ids in
-- (first_recipient - 1, last_recipient]. Batches are cut in recipient-id order
-- behind the job's cursor, so they never overlap, and a batch stays the same
-- batch until it is sent or fails: one that was in flight when its worker died
-- is sent again as itself, and the ledger names it.
CREATE TABLE batches (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs (id),
    update_id   INTEGER NOT NULL,
    channel     TEXT    NOT NULL,
    state       TEXT    NOT NULL, -- inflight | retry | sent | failed
    size        INTEGER NOT NULL,
    first_recipient INTEGER NOT NULL,
    last_recipient  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 1,
    recovered   INTEGER NOT NULL DEFAULT 0, -- times taken over after its worker vanished mid-send
    lease_owner TEXT    NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL DEFAULT 0,
    provider_id TEXT    NOT NULL DEFAULT '',
    last_error  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    sent_at     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX batches_open ON batches (job_id, state);

-- The delivery ledger: one row per (update, channel, recipient). A row stays
-- queued while its batch is in flight; batch_id is set when the batch ends.
CREATE TABLE deliveries (
    update_id    INTEGER NOT NULL,
    channel      TEXT    NOT NULL,
    recipient_id INTEGER NOT NULL,
    state        TEXT    NOT NULL, -- queued | sent | failed
    batch_id     INTEGER NOT NULL DEFAULT 0,
    message_id   TEXT    NOT NULL, -- our Message-ID for this recipient
    thread_ref   TEXT    NOT NULL DEFAULT '', -- Message-ID of this recipient's first notice of the incident
    sent_at      INTEGER NOT NULL DEFAULT 0,
    error        TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (update_id, channel, recipient_id)
) WITHOUT ROWID;

-- Social posts of an update: an X thread (seq 1..n) or a Facebook post.
CREATE TABLE posts (
    id           INTEGER PRIMARY KEY,
    update_id    INTEGER NOT NULL REFERENCES updates (id),
    channel      TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    text         TEXT    NOT NULL,
    state        TEXT    NOT NULL, -- queued | sent | failed | retracted
    external_id  TEXT    NOT NULL DEFAULT '',
    url          TEXT    NOT NULL DEFAULT '',
    parent_id    TEXT    NOT NULL DEFAULT '',
    error        TEXT    NOT NULL DEFAULT '',
    posted_at    INTEGER NOT NULL DEFAULT 0,
    retracted_at INTEGER NOT NULL DEFAULT 0,
    UNIQUE (update_id, channel, seq)
);
CREATE INDEX posts_external ON posts (channel, external_id);

-- Settings shared by every process on the store; "paused" is the kill switch.
CREATE TABLE control (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Poller cursors (since_ids), so a restart neither misses nor re-reads.
CREATE TABLE cursors (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Replies from customers on every channel.
CREATE TABLE replies (
    id          INTEGER PRIMARY KEY,
    channel     TEXT    NOT NULL,
    external_id TEXT    NOT NULL,
    incident_id INTEGER NOT NULL DEFAULT 0,
    update_id   INTEGER NOT NULL DEFAULT 0,
    author_id   TEXT    NOT NULL DEFAULT '',
    author_name TEXT    NOT NULL DEFAULT '',
    text        TEXT    NOT NULL DEFAULT '',
    in_reply_to TEXT    NOT NULL DEFAULT '',
    root_id     TEXT    NOT NULL DEFAULT '',
    state       TEXT    NOT NULL DEFAULT 'visible', -- visible | hidden | removed
    created_at  INTEGER NOT NULL DEFAULT 0,
    event_at    INTEGER NOT NULL DEFAULT 0,
    received_at INTEGER NOT NULL,
    edited_at   INTEGER NOT NULL DEFAULT 0,
    raw         TEXT    NOT NULL DEFAULT '',
    UNIQUE (channel, external_id)
);
CREATE INDEX replies_incident ON replies (incident_id, created_at);

-- Append-only audit log of publishes, pauses, retractions and imports.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    subject TEXT    NOT NULL DEFAULT '',
    detail  TEXT    NOT NULL DEFAULT '{}'
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
