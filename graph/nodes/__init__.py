"""The agent graph's nodes, one file each: `reason` (the model's turn), `act` (running tools),
`reflect` (keeping long-term memories), `reward` (settling rewards), `self_rewrite` (learned
rules, probation, the agent's own prompt rewrites), `compact` (folding old turns into the
summary). Their wiring is builder.py; what they use lives in the domain packages."""
