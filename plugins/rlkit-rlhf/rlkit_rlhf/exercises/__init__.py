"""The stub students fill in (``rlkit init`` copies it into their workspace)."""
