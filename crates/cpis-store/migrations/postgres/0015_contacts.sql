-- Each other's contact details (docs/WORKFLOW.md): a care setting's contact number from the
-- directory, and the work contact (phone, email) a person's identity provider asserted at
-- sign-in, kept with the web session so their lookups carry it to the LA.
ALTER TABLE care_settings ADD COLUMN phone text;
ALTER TABLE sessions ADD COLUMN contact_phone text;
ALTER TABLE sessions ADD COLUMN contact_email text;
