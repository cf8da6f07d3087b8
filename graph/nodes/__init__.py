"""The graph's nodes, one file each: `reason` (the model's turn), `act` (running tools),
`compact` (folding old turns into the summary)."""
