"""What was read, without watching anyone: counted links, click counts, the campaign report."""
