"""How it is sent: campaigns, the freeze, the send run, send-due, SMTP, one-off messages."""
