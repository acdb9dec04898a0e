"""What is sent: campaign files, news items, rendering once per language, message building."""
