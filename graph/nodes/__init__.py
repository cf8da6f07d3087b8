"""The graph's nodes, one file each: `reason` (the model's turn) and `act` (running tools)."""
