"""The checking engine: checks per exercise, the sandbox that runs student code, reports."""
