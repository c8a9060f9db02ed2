-- Dashboard aggregates, kept by triggers in the transaction of every write that changes them: the
-- dashboard and the summary read a few hundred rows, whatever the size of the register.
--
-- Each table has a view that computes it from the register (`<table>_expected`): it backfills the
-- table below, and `openrisk verify` compares the two. The statuses named here are the domain's:
-- open is `open` or `in_progress`, a mitigation is active while `planned` or `in_progress`.
--
-- A trigger adds the row as it was (-1) and the row as it is (+1), grouped so that an unchanged
-- key adds nothing.

CREATE TABLE risk_counts (
    org_id     BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    status     TEXT NOT NULL,
    severity   TEXT NOT NULL,
    likelihood INTEGER NOT NULL,
    impact     INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    score_sum  INTEGER NOT NULL,
    PRIMARY KEY (org_id, status, severity, likelihood, impact)
) WITHOUT ROWID;

CREATE VIEW risk_counts_expected AS
SELECT org_id, status, severity, likelihood, impact, count(*) AS count, sum(score) AS score_sum
FROM risks
GROUP BY org_id, status, severity, likelihood, impact;

-- Risks per review date: the overdue reviews are those dated before today.
CREATE TABLE risk_review_days (
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    review_date TEXT NOT NULL,
    status      TEXT NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (org_id, review_date, status)
) WITHOUT ROWID;

CREATE VIEW risk_review_days_expected AS
SELECT org_id, review_date, status, count(*) AS count
FROM risks
WHERE review_date IS NOT NULL
GROUP BY org_id, review_date, status;

CREATE TABLE mitigation_counts (
    org_id BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (org_id, status)
) WITHOUT ROWID;

CREATE VIEW mitigation_counts_expected AS
SELECT org_id, status, count(*) AS count FROM mitigations GROUP BY org_id, status;

-- Mitigations per due date: those due before today have passed it.
CREATE TABLE mitigation_due_days (
    org_id   BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    due_date TEXT NOT NULL,
    status   TEXT NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (org_id, due_date, status)
) WITHOUT ROWID;

CREATE VIEW mitigation_due_days_expected AS
SELECT org_id, due_date, status, count(*) AS count
FROM mitigations
WHERE due_date IS NOT NULL
GROUP BY org_id, due_date, status;

-- Per UTC day, from the history (which only grows): risks created, risks moved into `closed`, and
-- the change in open risks. Each entry is compared with the risk's entry before it.
CREATE TABLE risk_activity_days (
    org_id      BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    day         TEXT NOT NULL,
    created     INTEGER NOT NULL,
    closed      INTEGER NOT NULL,
    open_change INTEGER NOT NULL,
    PRIMARY KEY (org_id, day)
) WITHOUT ROWID;

CREATE VIEW risk_activity_days_expected AS
SELECT h.org_id AS org_id, date(h.changed_at) AS day,
       sum(CASE WHEN h.change_type = 'create' THEN 1 ELSE 0 END) AS created,
       sum(CASE WHEN h.status = 'closed' AND p.status IS NOT 'closed' THEN 1 ELSE 0 END) AS closed,
       sum(CASE WHEN h.status IN ('open', 'in_progress') THEN 1 ELSE 0 END
           - CASE WHEN p.status IN ('open', 'in_progress') THEN 1 ELSE 0 END) AS open_change
FROM risk_history h
LEFT JOIN risk_history p ON p.risk_id = h.risk_id AND p.version = h.version - 1
GROUP BY h.org_id, date(h.changed_at);

CREATE TRIGGER risks_inserted AFTER INSERT ON risks
BEGIN
    INSERT INTO risk_counts (org_id, status, severity, likelihood, impact, count, score_sum)
    SELECT NEW.org_id, NEW.status, NEW.severity, NEW.likelihood, NEW.impact, 1, 1 * NEW.score WHERE true
    ON CONFLICT (org_id, status, severity, likelihood, impact) DO UPDATE SET count = risk_counts.count + excluded.count, score_sum = risk_counts.score_sum + excluded.score_sum;
    INSERT INTO risk_review_days (org_id, review_date, status, count)
    SELECT NEW.org_id, NEW.review_date, NEW.status, 1 WHERE NEW.review_date IS NOT NULL
    ON CONFLICT (org_id, review_date, status) DO UPDATE SET count = risk_review_days.count + excluded.count;
END;

CREATE TRIGGER risks_deleted AFTER DELETE ON risks
BEGIN
    INSERT INTO risk_counts (org_id, status, severity, likelihood, impact, count, score_sum)
    SELECT OLD.org_id, OLD.status, OLD.severity, OLD.likelihood, OLD.impact, -1, -1 * OLD.score WHERE true
    ON CONFLICT (org_id, status, severity, likelihood, impact) DO UPDATE SET count = risk_counts.count + excluded.count, score_sum = risk_counts.score_sum + excluded.score_sum;
    INSERT INTO risk_review_days (org_id, review_date, status, count)
    SELECT OLD.org_id, OLD.review_date, OLD.status, -1 WHERE OLD.review_date IS NOT NULL
    ON CONFLICT (org_id, review_date, status) DO UPDATE SET count = risk_review_days.count + excluded.count;
END;

CREATE TRIGGER risks_updated AFTER UPDATE OF status, severity, likelihood, impact, score, review_date ON risks
BEGIN
    INSERT INTO risk_counts (org_id, status, severity, likelihood, impact, count, score_sum)
    SELECT org_id, status, severity, likelihood, impact, sum(sign), sum(score_sum)
    FROM (
        SELECT OLD.org_id AS org_id, OLD.status AS status, OLD.severity AS severity, OLD.likelihood AS likelihood, OLD.impact AS impact, -1 AS sign, -1 * OLD.score AS score_sum
        UNION ALL
        SELECT NEW.org_id AS org_id, NEW.status AS status, NEW.severity AS severity, NEW.likelihood AS likelihood, NEW.impact AS impact, 1 AS sign, 1 * NEW.score AS score_sum
    )
    WHERE true
    GROUP BY org_id, status, severity, likelihood, impact
    HAVING sum(sign) <> 0
    ON CONFLICT (org_id, status, severity, likelihood, impact) DO UPDATE SET count = risk_counts.count + excluded.count, score_sum = risk_counts.score_sum + excluded.score_sum;
    INSERT INTO risk_review_days (org_id, review_date, status, count)
    SELECT org_id, review_date, status, sum(sign)
    FROM (
        SELECT OLD.org_id AS org_id, OLD.review_date AS review_date, OLD.status AS status, -1 AS sign
        UNION ALL
        SELECT NEW.org_id AS org_id, NEW.review_date AS review_date, NEW.status AS status, 1 AS sign
    )
    WHERE review_date IS NOT NULL
    GROUP BY org_id, review_date, status
    HAVING sum(sign) <> 0
    ON CONFLICT (org_id, review_date, status) DO UPDATE SET count = risk_review_days.count + excluded.count;
END;

CREATE TRIGGER mitigations_inserted AFTER INSERT ON mitigations
BEGIN
    INSERT INTO mitigation_counts (org_id, status, count)
    SELECT NEW.org_id, NEW.status, 1 WHERE true
    ON CONFLICT (org_id, status) DO UPDATE SET count = mitigation_counts.count + excluded.count;
    INSERT INTO mitigation_due_days (org_id, due_date, status, count)
    SELECT NEW.org_id, NEW.due_date, NEW.status, 1 WHERE NEW.due_date IS NOT NULL
    ON CONFLICT (org_id, due_date, status) DO UPDATE SET count = mitigation_due_days.count + excluded.count;
END;

CREATE TRIGGER mitigations_deleted AFTER DELETE ON mitigations
BEGIN
    INSERT INTO mitigation_counts (org_id, status, count)
    SELECT OLD.org_id, OLD.status, -1 WHERE true
    ON CONFLICT (org_id, status) DO UPDATE SET count = mitigation_counts.count + excluded.count;
    INSERT INTO mitigation_due_days (org_id, due_date, status, count)
    SELECT OLD.org_id, OLD.due_date, OLD.status, -1 WHERE OLD.due_date IS NOT NULL
    ON CONFLICT (org_id, due_date, status) DO UPDATE SET count = mitigation_due_days.count + excluded.count;
END;

CREATE TRIGGER mitigations_updated AFTER UPDATE OF status, due_date ON mitigations
BEGIN
    INSERT INTO mitigation_counts (org_id, status, count)
    SELECT org_id, status, sum(sign)
    FROM (
        SELECT OLD.org_id AS org_id, OLD.status AS status, -1 AS sign
        UNION ALL
        SELECT NEW.org_id AS org_id, NEW.status AS status, 1 AS sign
    )
    WHERE true
    GROUP BY org_id, status
    HAVING sum(sign) <> 0
    ON CONFLICT (org_id, status) DO UPDATE SET count = mitigation_counts.count + excluded.count;
    INSERT INTO mitigation_due_days (org_id, due_date, status, count)
    SELECT org_id, due_date, status, sum(sign)
    FROM (
        SELECT OLD.org_id AS org_id, OLD.due_date AS due_date, OLD.status AS status, -1 AS sign
        UNION ALL
        SELECT NEW.org_id AS org_id, NEW.due_date AS due_date, NEW.status AS status, 1 AS sign
    )
    WHERE due_date IS NOT NULL
    GROUP BY org_id, due_date, status
    HAVING sum(sign) <> 0
    ON CONFLICT (org_id, due_date, status) DO UPDATE SET count = mitigation_due_days.count + excluded.count;
END;

CREATE TRIGGER risk_history_inserted AFTER INSERT ON risk_history
BEGIN
    INSERT INTO risk_activity_days (org_id, day, created, closed, open_change)
    SELECT NEW.org_id, date(NEW.changed_at),
           CASE WHEN NEW.change_type = 'create' THEN 1 ELSE 0 END,
           CASE WHEN NEW.status = 'closed' AND p.status IS NOT 'closed' THEN 1 ELSE 0 END,
           CASE WHEN NEW.status IN ('open', 'in_progress') THEN 1 ELSE 0 END
           - CASE WHEN p.status IN ('open', 'in_progress') THEN 1 ELSE 0 END
    FROM (SELECT (SELECT status FROM risk_history
                  WHERE risk_id = NEW.risk_id AND version = NEW.version - 1) AS status) AS p
    WHERE true
    ON CONFLICT (org_id, day) DO UPDATE
    SET created = risk_activity_days.created + excluded.created,
        closed = risk_activity_days.closed + excluded.closed,
        open_change = risk_activity_days.open_change + excluded.open_change;
END;

-- What the aggregates replace: the timeline no longer reads the history by day.
DROP INDEX risk_history_changed;
-- Top risks, in the order they are shown (SQLite puts NULLs last in descending order): each open status's range of the index is read
-- from its start, and the first rows of the ranges are merged.
DROP INDEX risks_org_top;
CREATE INDEX risks_org_top ON risks (org_id, status, score DESC, residual_score DESC, id);

INSERT INTO risk_counts SELECT * FROM risk_counts_expected;
INSERT INTO risk_review_days SELECT * FROM risk_review_days_expected;
INSERT INTO mitigation_counts SELECT * FROM mitigation_counts_expected;
INSERT INTO mitigation_due_days SELECT * FROM mitigation_due_days_expected;
INSERT INTO risk_activity_days SELECT * FROM risk_activity_days_expected;
