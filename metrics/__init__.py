"""Series of timestamped metrics, and the live weekly stream built on streaming/."""
