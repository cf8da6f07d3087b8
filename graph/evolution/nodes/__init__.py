"""The evolution subgraph's nodes, one file each, in the order they run: `seed`, `adapt`,
`score`, `select`, then `breed` (back to score) or `promote`. Their wiring is graph.py."""
