-- The risk's status after each change, so dashboards can tell when a risk was open.
ALTER TABLE risk_history ADD COLUMN status text;
UPDATE risk_history h SET status = r.status FROM risks r WHERE r.id = h.risk_id AND h.change_type <> 'delete';
CREATE INDEX risk_history_org ON risk_history (org_id, risk_id, version);
CREATE INDEX risks_org_closed ON risks (org_id, closed_at);
