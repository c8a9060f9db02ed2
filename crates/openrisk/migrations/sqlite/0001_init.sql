-- Ids are 16-byte BLOBs (UUIDs), timestamps RFC 3339 UTC text, tags JSON arrays.

CREATE TABLE organizations (
    id          BLOB PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    risk_seq    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (org_id, email)
);
CREATE INDEX users_org ON users (org_id, id);

CREATE TABLE api_tokens (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    is_system   INTEGER NOT NULL DEFAULT 0,
    token_hash  BLOB NOT NULL UNIQUE,
    expires_at  TEXT,
    revoked_at  TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX api_tokens_org ON api_tokens (org_id, id);

CREATE TABLE assets (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    criticality TEXT NOT NULL,
    description TEXT NOT NULL,
    tags        TEXT NOT NULL DEFAULT '[]',
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX assets_org ON assets (org_id, id);

CREATE TABLE risks (
    -- A stable rowid for the search index (VACUUM may renumber implicit rowids).
    seq                 INTEGER PRIMARY KEY,
    id                  BLOB NOT NULL UNIQUE,
    org_id              BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    ref_number          INTEGER NOT NULL,
    title               TEXT NOT NULL,
    description         TEXT NOT NULL,
    category            TEXT,
    owner_id            BLOB REFERENCES users(id) ON DELETE SET NULL,
    status              TEXT NOT NULL,
    likelihood          INTEGER NOT NULL,
    impact              INTEGER NOT NULL,
    score               INTEGER NOT NULL,
    severity            TEXT NOT NULL,
    residual_likelihood INTEGER,
    residual_impact     INTEGER,
    residual_score      INTEGER,
    treatment           TEXT,
    tags                TEXT NOT NULL DEFAULT '[]',
    review_date         TEXT,
    search_text         TEXT NOT NULL,
    version             INTEGER NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    closed_at           TEXT,
    UNIQUE (org_id, ref_number)
);
-- One index per sort order (ties broken by id); filters narrow within the organization.
CREATE INDEX risks_org_score   ON risks (org_id, score, id);
CREATE INDEX risks_org_created ON risks (org_id, created_at, id);
CREATE INDEX risks_org_updated ON risks (org_id, updated_at, id);
CREATE INDEX risks_org_title   ON risks (org_id, title, id);
CREATE INDEX risks_org_status  ON risks (org_id, status, score, id);
CREATE INDEX risks_org_severity ON risks (org_id, severity, score, id);
CREATE INDEX risks_org_category ON risks (org_id, category);
CREATE INDEX risks_org_owner   ON risks (org_id, owner_id);

-- Substring search (case-insensitive) over title, description and tags.
CREATE VIRTUAL TABLE risks_fts USING fts5(
    search_text, content = 'risks', content_rowid = 'seq', tokenize = 'trigram case_sensitive 0'
);
CREATE TRIGGER risks_fts_insert AFTER INSERT ON risks BEGIN
    INSERT INTO risks_fts (rowid, search_text) VALUES (new.seq, new.search_text);
END;
CREATE TRIGGER risks_fts_delete AFTER DELETE ON risks BEGIN
    INSERT INTO risks_fts (risks_fts, rowid, search_text) VALUES ('delete', old.seq, old.search_text);
END;
CREATE TRIGGER risks_fts_update AFTER UPDATE OF search_text ON risks BEGIN
    INSERT INTO risks_fts (risks_fts, rowid, search_text) VALUES ('delete', old.seq, old.search_text);
    INSERT INTO risks_fts (rowid, search_text) VALUES (new.seq, new.search_text);
END;

CREATE TABLE risk_assets (
    risk_id     BLOB NOT NULL REFERENCES risks(id) ON DELETE CASCADE,
    asset_id    BLOB NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    PRIMARY KEY (risk_id, asset_id)
) WITHOUT ROWID;
CREATE INDEX risk_assets_asset ON risk_assets (asset_id);

-- No foreign key to risks: a deleted risk's history stays readable.
CREATE TABLE risk_history (
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    risk_id     BLOB NOT NULL,
    version     INTEGER NOT NULL,
    changed_at  TEXT NOT NULL,
    changed_by  BLOB,
    change_type TEXT NOT NULL,
    changes     TEXT NOT NULL,
    PRIMARY KEY (risk_id, version)
) WITHOUT ROWID;

CREATE TABLE mitigations (
    id           BLOB PRIMARY KEY,
    org_id       BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    risk_id      BLOB NOT NULL REFERENCES risks(id) ON DELETE CASCADE,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL,
    status       TEXT NOT NULL,
    owner_id     BLOB REFERENCES users(id) ON DELETE SET NULL,
    due_date     TEXT,
    progress     INTEGER NOT NULL,
    cost         REAL,
    version      INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    completed_at TEXT
);
CREATE INDEX mitigations_risk ON mitigations (risk_id, id);
CREATE INDEX mitigations_org ON mitigations (org_id, status, due_date);
