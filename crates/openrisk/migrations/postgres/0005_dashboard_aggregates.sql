-- Dashboard aggregates, kept by triggers in the transaction of every write that changes them: the
-- dashboard and the summary read a few hundred rows, whatever the size of the register.
--
-- Each table has a view that computes it from the register (`<table>_expected`): it backfills the
-- table below, and `openrisk verify` compares the two. The statuses named here are the domain's:
-- open is `open` or `in_progress`, a mitigation is active while `planned` or `in_progress`.
--
-- A trigger adds the row as it was (-1) and the row as it is (+1), grouped so that an unchanged
-- key adds nothing, and in key order, so that concurrent writes lock aggregate rows in one order.
-- The tables are half-filled pages: a row updated by every write stays on its page (HOT), where
-- pruning reclaims its old versions.

CREATE TABLE risk_counts (
    org_id     uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    status     text NOT NULL,
    severity   text NOT NULL,
    likelihood integer NOT NULL,
    impact     integer NOT NULL,
    count      bigint NOT NULL,
    score_sum  bigint NOT NULL,
    PRIMARY KEY (org_id, status, severity, likelihood, impact)
) WITH (fillfactor = 50);

CREATE VIEW risk_counts_expected AS
SELECT org_id, status, severity, likelihood, impact, count(*) AS count, sum(score) AS score_sum
FROM risks
GROUP BY org_id, status, severity, likelihood, impact;

-- Risks per review date: the overdue reviews are those dated before today.
CREATE TABLE risk_review_days (
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    review_date date NOT NULL,
    status      text NOT NULL,
    count       bigint NOT NULL,
    PRIMARY KEY (org_id, review_date, status)
) WITH (fillfactor = 50);

CREATE VIEW risk_review_days_expected AS
SELECT org_id, review_date, status, count(*) AS count
FROM risks
WHERE review_date IS NOT NULL
GROUP BY org_id, review_date, status;

CREATE TABLE mitigation_counts (
    org_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    status text NOT NULL,
    count  bigint NOT NULL,
    PRIMARY KEY (org_id, status)
) WITH (fillfactor = 50);

CREATE VIEW mitigation_counts_expected AS
SELECT org_id, status, count(*) AS count FROM mitigations GROUP BY org_id, status;

-- Mitigations per due date: those due before today have passed it.
CREATE TABLE mitigation_due_days (
    org_id   uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    due_date date NOT NULL,
    status   text NOT NULL,
    count    bigint NOT NULL,
    PRIMARY KEY (org_id, due_date, status)
) WITH (fillfactor = 50);

CREATE VIEW mitigation_due_days_expected AS
SELECT org_id, due_date, status, count(*) AS count
FROM mitigations
WHERE due_date IS NOT NULL
GROUP BY org_id, due_date, status;

-- Per UTC day, from the history (which only grows): risks created, risks moved into `closed`, and
-- the change in open risks. Each entry is compared with the risk's entry before it.
CREATE TABLE risk_activity_days (
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    day         date NOT NULL,
    created     bigint NOT NULL,
    closed      bigint NOT NULL,
    open_change bigint NOT NULL,
    PRIMARY KEY (org_id, day)
) WITH (fillfactor = 50);

CREATE FUNCTION risk_activity(change_type text, status text, previous_status text)
RETURNS TABLE (created bigint, closed bigint, open_change bigint)
LANGUAGE sql IMMUTABLE AS $$
    SELECT
        CASE WHEN change_type = 'create' THEN 1 ELSE 0 END::bigint,
        CASE WHEN status = 'closed' AND previous_status IS DISTINCT FROM 'closed' THEN 1 ELSE 0 END::bigint,
        (CASE WHEN status IN ('open', 'in_progress') THEN 1 ELSE 0 END
         - CASE WHEN previous_status IN ('open', 'in_progress') THEN 1 ELSE 0 END)::bigint
$$;

CREATE VIEW risk_activity_days_expected AS
SELECT h.org_id, (h.changed_at AT TIME ZONE 'UTC')::date AS day,
       sum(a.created) AS created, sum(a.closed) AS closed, sum(a.open_change) AS open_change
FROM risk_history h
LEFT JOIN risk_history p ON p.risk_id = h.risk_id AND p.version = h.version - 1
CROSS JOIN LATERAL risk_activity(h.change_type, h.status, p.status) a
GROUP BY h.org_id, (h.changed_at AT TIME ZONE 'UTC')::date;

CREATE FUNCTION count_risk() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO risk_counts AS c (org_id, status, severity, likelihood, impact, count, score_sum)
    SELECT org_id, status, severity, likelihood, impact, sum(sign), sum(sign * score)
    FROM (
        SELECT OLD.org_id, OLD.status, OLD.severity, OLD.likelihood, OLD.impact, OLD.score, -1
        WHERE TG_OP <> 'INSERT'
        UNION ALL
        SELECT NEW.org_id, NEW.status, NEW.severity, NEW.likelihood, NEW.impact, NEW.score, 1
        WHERE TG_OP <> 'DELETE'
    ) AS d (org_id, status, severity, likelihood, impact, score, sign)
    GROUP BY org_id, status, severity, likelihood, impact
    HAVING sum(sign) <> 0
    ORDER BY org_id, status, severity, likelihood, impact
    ON CONFLICT (org_id, status, severity, likelihood, impact) DO UPDATE
    SET count = c.count + excluded.count, score_sum = c.score_sum + excluded.score_sum;

    INSERT INTO risk_review_days AS c (org_id, review_date, status, count)
    SELECT org_id, review_date, status, sum(sign)
    FROM (
        SELECT OLD.org_id, OLD.review_date, OLD.status, -1 WHERE TG_OP <> 'INSERT'
        UNION ALL
        SELECT NEW.org_id, NEW.review_date, NEW.status, 1 WHERE TG_OP <> 'DELETE'
    ) AS d (org_id, review_date, status, sign)
    WHERE review_date IS NOT NULL
    GROUP BY org_id, review_date, status
    HAVING sum(sign) <> 0
    ORDER BY org_id, review_date, status
    ON CONFLICT (org_id, review_date, status) DO UPDATE SET count = c.count + excluded.count;
    RETURN NULL;
END
$$;

CREATE TRIGGER risks_counted AFTER INSERT OR DELETE ON risks FOR EACH ROW EXECUTE FUNCTION count_risk();
CREATE TRIGGER risks_recounted AFTER UPDATE OF status, severity, likelihood, impact, score, review_date
    ON risks FOR EACH ROW EXECUTE FUNCTION count_risk();

CREATE FUNCTION count_mitigation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mitigation_counts AS c (org_id, status, count)
    SELECT org_id, status, sum(sign)
    FROM (
        SELECT OLD.org_id, OLD.status, -1 WHERE TG_OP <> 'INSERT'
        UNION ALL
        SELECT NEW.org_id, NEW.status, 1 WHERE TG_OP <> 'DELETE'
    ) AS d (org_id, status, sign)
    GROUP BY org_id, status
    HAVING sum(sign) <> 0
    ORDER BY org_id, status
    ON CONFLICT (org_id, status) DO UPDATE SET count = c.count + excluded.count;

    INSERT INTO mitigation_due_days AS c (org_id, due_date, status, count)
    SELECT org_id, due_date, status, sum(sign)
    FROM (
        SELECT OLD.org_id, OLD.due_date, OLD.status, -1 WHERE TG_OP <> 'INSERT'
        UNION ALL
        SELECT NEW.org_id, NEW.due_date, NEW.status, 1 WHERE TG_OP <> 'DELETE'
    ) AS d (org_id, due_date, status, sign)
    WHERE due_date IS NOT NULL
    GROUP BY org_id, due_date, status
    HAVING sum(sign) <> 0
    ORDER BY org_id, due_date, status
    ON CONFLICT (org_id, due_date, status) DO UPDATE SET count = c.count + excluded.count;
    RETURN NULL;
END
$$;

CREATE TRIGGER mitigations_counted AFTER INSERT OR DELETE ON mitigations
    FOR EACH ROW EXECUTE FUNCTION count_mitigation();
CREATE TRIGGER mitigations_recounted AFTER UPDATE OF status, due_date ON mitigations
    FOR EACH ROW EXECUTE FUNCTION count_mitigation();

CREATE FUNCTION count_risk_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO risk_activity_days AS c (org_id, day, created, closed, open_change)
    SELECT NEW.org_id, (NEW.changed_at AT TIME ZONE 'UTC')::date, a.created, a.closed, a.open_change
    FROM risk_activity(
        NEW.change_type,
        NEW.status,
        (SELECT p.status FROM risk_history p WHERE p.risk_id = NEW.risk_id AND p.version = NEW.version - 1)
    ) a
    ON CONFLICT (org_id, day) DO UPDATE
    SET created = c.created + excluded.created,
        closed = c.closed + excluded.closed,
        open_change = c.open_change + excluded.open_change;
    RETURN NULL;
END
$$;

CREATE TRIGGER risk_history_counted AFTER INSERT ON risk_history
    FOR EACH ROW EXECUTE FUNCTION count_risk_activity();

-- What the aggregates replace: the timeline no longer reads the history by day.
DROP INDEX risk_history_changed;
-- Top risks, in the order they are shown: each open status's range of the index is read
-- from its start, and the first rows of the ranges are merged.
DROP INDEX risks_org_top;
CREATE INDEX risks_org_top ON risks (org_id, status, score DESC, residual_score DESC NULLS LAST, id);

INSERT INTO risk_counts SELECT * FROM risk_counts_expected;
INSERT INTO risk_review_days SELECT * FROM risk_review_days_expected;
INSERT INTO mitigation_counts SELECT * FROM mitigation_counts_expected;
INSERT INTO mitigation_due_days SELECT * FROM mitigation_due_days_expected;
INSERT INTO risk_activity_days SELECT * FROM risk_activity_days_expected;
