-- Approvals: a person's answer to a job that waited in state 'waiting'
-- (`environment: { approval: required }`). NULL while nobody answered.
ALTER TABLE jobs ADD COLUMN approved BOOLEAN;
ALTER TABLE jobs ADD COLUMN approval_by TEXT;
ALTER TABLE jobs ADD COLUMN approval_at BIGINT;
