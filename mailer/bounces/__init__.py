"""Bounces and complaints: parse returned mail, read the bounce mailbox, apply the rules."""
