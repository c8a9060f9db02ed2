CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    name        text NOT NULL,
    risk_seq    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL
);

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email       text NOT NULL,
    name        text NOT NULL,
    role        text NOT NULL,
    created_at  timestamptz NOT NULL,
    UNIQUE (org_id, email)
);
CREATE INDEX users_org ON users (org_id, id);

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        text NOT NULL,
    role        text NOT NULL,
    is_system   boolean NOT NULL DEFAULT false,
    token_hash  bytea NOT NULL UNIQUE,
    expires_at  timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL
);
CREATE INDEX api_tokens_org ON api_tokens (org_id, id);

CREATE TABLE assets (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        text NOT NULL,
    kind        text NOT NULL,
    criticality text NOT NULL,
    description text NOT NULL,
    tags        jsonb NOT NULL DEFAULT '[]',
    version     bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX assets_org ON assets (org_id, id);

CREATE TABLE risks (
    id                  uuid PRIMARY KEY,
    org_id              uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    ref_number          bigint NOT NULL,
    title               text NOT NULL,
    description         text NOT NULL,
    category            text,
    owner_id            uuid REFERENCES users(id) ON DELETE SET NULL,
    status              text NOT NULL,
    likelihood          integer NOT NULL,
    impact              integer NOT NULL,
    score               integer NOT NULL,
    severity            text NOT NULL,
    residual_likelihood integer,
    residual_impact     integer,
    residual_score      integer,
    treatment           text,
    tags                jsonb NOT NULL DEFAULT '[]',
    review_date         date,
    search_text         text NOT NULL,
    version             bigint NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    closed_at           timestamptz,
    UNIQUE (org_id, ref_number)
);
-- One index per sort order (ties broken by id); titles sort bytewise ("C"), like SQLite.
CREATE INDEX risks_org_score    ON risks (org_id, score, id);
CREATE INDEX risks_org_created  ON risks (org_id, created_at, id);
CREATE INDEX risks_org_updated  ON risks (org_id, updated_at, id);
CREATE INDEX risks_org_title    ON risks (org_id, (title COLLATE "C"), id);
CREATE INDEX risks_org_status   ON risks (org_id, status, score, id);
CREATE INDEX risks_org_severity ON risks (org_id, severity, score, id);
CREATE INDEX risks_org_category ON risks (org_id, category);
CREATE INDEX risks_org_owner    ON risks (org_id, owner_id);
CREATE INDEX risks_tags         ON risks USING gin (tags);
-- Case-insensitive substring search (ILIKE) through trigrams.
CREATE INDEX risks_search       ON risks USING gin (search_text gin_trgm_ops);

CREATE TABLE risk_assets (
    risk_id     uuid NOT NULL REFERENCES risks(id) ON DELETE CASCADE,
    asset_id    uuid NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    PRIMARY KEY (risk_id, asset_id)
);
CREATE INDEX risk_assets_asset ON risk_assets (asset_id);

-- No foreign key to risks: a deleted risk's history stays readable.
CREATE TABLE risk_history (
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    risk_id     uuid NOT NULL,
    version     bigint NOT NULL,
    changed_at  timestamptz NOT NULL,
    changed_by  uuid,
    change_type text NOT NULL,
    changes     jsonb NOT NULL,
    PRIMARY KEY (risk_id, version)
);

CREATE TABLE mitigations (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    risk_id      uuid NOT NULL REFERENCES risks(id) ON DELETE CASCADE,
    title        text NOT NULL,
    description  text NOT NULL,
    status       text NOT NULL,
    owner_id     uuid REFERENCES users(id) ON DELETE SET NULL,
    due_date     date,
    progress     integer NOT NULL,
    cost         double precision,
    version      bigint NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    completed_at timestamptz
);
CREATE INDEX mitigations_risk ON mitigations (risk_id, id);
CREATE INDEX mitigations_org ON mitigations (org_id, status, due_date);
