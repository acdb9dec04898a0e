"""How it is sent: campaigns, the freeze, the send run, send-due, SMTP, one-off messages.

campaigns  create, list, show, cancel, stats; the check that a campaign makes messages
content    what sending needs from newsletter and audience (render, build, select)
freeze     the rendered variants and the audience, written once before the first message
options    what a run is given (SendOptions, RetryPolicy, SendContext) and reports
engine     one campaign's run: lease, claim, send, record (the delivery state machine)
due        send-due: every campaign that is due, for cron
previews   dry run, test send, audience size (nothing recorded)
oneoff     a single message outside any campaign, over one verified connection
smtp       one connection: TLS, timeouts, outcomes (RFC 5321, RFC 1047)
pool       several connections in threads, a shared rate limit, a pause on failures
"""
