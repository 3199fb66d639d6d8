"""Scheduling: the memory budget and the download driver."""
