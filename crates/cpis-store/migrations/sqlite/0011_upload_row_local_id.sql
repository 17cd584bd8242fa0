-- The local id each report row was sent with, so an LA can find a rejected row in its own
-- system (the report shows it beside the row).
ALTER TABLE upload_rows ADD COLUMN local_id TEXT;
