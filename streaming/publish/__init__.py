"""Publish: runs in every process that writes. Sends committed keys over the channel layer."""
