"""Who gets mail: contacts, their import, lists, segments, addresses and subscription status."""
