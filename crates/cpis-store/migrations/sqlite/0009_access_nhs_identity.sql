-- The NHS identity of the person who looked a child up, when they signed in through NHS CIS2:
-- their SDS user id, the SDS role profile id of the role they selected, and that role's national
-- job role code (e.g. R8000). NULL for local accounts, API tokens and systems.
ALTER TABLE accesses ADD COLUMN sds_user_id TEXT;
ALTER TABLE accesses ADD COLUMN role_profile_id TEXT;
ALTER TABLE accesses ADD COLUMN role_code TEXT;
