-- Covering indexes: dashboard aggregates read only these, never the wide risk rows.
CREATE INDEX risks_org_dashboard ON risks (org_id, status, severity, score, review_date);
CREATE INDEX risks_org_matrix ON risks (org_id, status, likelihood, impact);
CREATE INDEX risks_org_top ON risks (org_id, status, score, residual_score, id);
-- The timeline reads the history entries from a day on, each with the entry before it.
CREATE INDEX risk_history_changed ON risk_history (org_id, changed_at, risk_id, version, status, change_type);
-- Overdue mitigations, oldest due date first: the scan stops after a page.
CREATE INDEX mitigations_org_due ON mitigations (org_id, due_date, status);
