"""A second user of streaming/, kept in tests/: boards of notes, streamed per board."""
