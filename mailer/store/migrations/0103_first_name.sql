-- The first name, kept for the greeting ("Hei Riikka," rather than "Hei Riikka Heikkilä,"):
-- from an import's first-name column (etunimi, förnamn, first name) or `contacts edit
-- --first-name`. Empty when unknown; the greeting then uses the whole name.
ALTER TABLE contacts ADD COLUMN first_name TEXT NOT NULL DEFAULT '';
