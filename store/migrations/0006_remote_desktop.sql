-- Remote Desktop (issue #14): a target may offer RDP on a port; each level says whether RDP,
-- its clipboard and the vendor's drives are allowed; the target's TLS certificate is pinned
-- on first use like an SSH host key.
ALTER TABLE targets ADD COLUMN rdp_port BIGINT CHECK (rdp_port IS NULL OR (rdp_port > 0 AND rdp_port < 65536));
ALTER TABLE targets ADD COLUMN rdp_certificate TEXT;
ALTER TABLE target_levels ADD COLUMN rdp BIGINT NOT NULL DEFAULT 0 CHECK (rdp IN (0, 1));
ALTER TABLE target_levels ADD COLUMN rdp_clipboard BIGINT NOT NULL DEFAULT 0 CHECK (rdp_clipboard IN (0, 1));
ALTER TABLE target_levels ADD COLUMN rdp_drives BIGINT NOT NULL DEFAULT 0 CHECK (rdp_drives IN (0, 1));
