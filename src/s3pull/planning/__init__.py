"""Planning: pure decisions (ranges, retries, paths), no I/O, no clock."""
