-- The render `campaign create` checked, with a fingerprint of everything it read (the
-- definition, the templates, the locale texts, the sender settings). The freeze takes it
-- when the fingerprint still matches, so `mailer send` neither imports nor runs Jinja2,
-- Markdown and premailer before its first message; otherwise it renders again.
ALTER TABLE campaigns ADD COLUMN rendered TEXT;
