"""PAS, the lane executor: command allowlists, the sandbox, and running lanes."""
