"""Student stubs: one module per exercise. Fill in the marked places, then `rlkit check`."""
