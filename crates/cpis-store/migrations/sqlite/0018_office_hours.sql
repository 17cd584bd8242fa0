-- cpis schema, SQLite backend, version 18: a local authority's office hours, as the directory
-- gives them (`Mon-Fri 09:00-17:00`; docs/WORKFLOW.md, "The clinician's flag"). Existing local
-- authorities get the standard hours until their directory file is loaded again.
ALTER TABLE local_authorities ADD COLUMN office_hours TEXT NOT NULL DEFAULT 'Mon-Fri 09:00-17:00';
