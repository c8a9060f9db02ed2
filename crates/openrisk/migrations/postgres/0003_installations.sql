CREATE TABLE installations (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    connector   text NOT NULL,
    enabled     boolean NOT NULL,
    config      jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (org_id, connector)
);
CREATE INDEX installations_org ON installations (org_id, id);
