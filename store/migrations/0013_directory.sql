-- Staff from the hospital's directory (issue #17): where an account comes from. `local`
-- accounts log in with their own password (vendor engineers always; staff as the break-glass
-- way in); `directory` accounts are made and kept up to date by a directory login and have
-- no password here.
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
