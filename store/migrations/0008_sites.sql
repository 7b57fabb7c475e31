-- Sites of a hospital group (issue #15): a target belongs to a site (none = the group's own);
-- a staff account may be limited to one site (none = every site).
ALTER TABLE targets ADD COLUMN site TEXT;
ALTER TABLE users ADD COLUMN site TEXT;
CREATE INDEX targets_site ON targets (site);
