-- The risk's status after each change, so dashboards can tell when a risk was open. Existing
-- entries get it from the history itself: the last status change at or before them.
ALTER TABLE risk_history ADD COLUMN status text;
UPDATE risk_history h SET status = (
    SELECT p.changes -> 'status' ->> 1 FROM risk_history p
    WHERE p.risk_id = h.risk_id AND p.version <= h.version AND p.changes ? 'status'
    ORDER BY p.version DESC LIMIT 1
)
WHERE h.change_type <> 'delete';
