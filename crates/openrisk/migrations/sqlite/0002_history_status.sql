-- The risk's status after each change, so dashboards can tell when a risk was open. Existing
-- entries get it from the history itself: the last status change at or before them.
ALTER TABLE risk_history ADD COLUMN status TEXT;
UPDATE risk_history SET status = (
    SELECT json_extract(p.changes, '$.status[1]') FROM risk_history p
    WHERE p.risk_id = risk_history.risk_id AND p.version <= risk_history.version
      AND json_extract(p.changes, '$.status') IS NOT NULL
    ORDER BY p.version DESC LIMIT 1
)
WHERE change_type <> 'delete';
