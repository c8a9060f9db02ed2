CREATE TABLE installations (
    id          BLOB PRIMARY KEY,
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    connector   TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    config      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (org_id, connector)
);
CREATE INDEX installations_org ON installations (org_id, id);
