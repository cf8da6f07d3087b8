"""What a user can do with the agent, once, for every front end: the CLI (graph/cli), the REPL's
slash commands, the agent's own tools (graph/tools), Studio and the web API and UI.

Each module owns one group of actions as plain, typed functions that take the session's
services (the Context, the Store, the backend) explicitly and return data; none prints.
A mistake the user can fix is a `Problem`, whose message says what (each front end shows it
its own way). Sending a turn and streaming its events is `graph.session.Session.turn()`.

  history   history, page, search, why, backup
  status    status (the snapshot `agent.py status` and /status show), settings_origins
  learning  state, summary, preferences, extra_calls, overview, switch, undo_preference
  rewards   rate, explain, report, curve, policy, MEANINGS
  memory    enabled, listing, search, add, forget, consolidate
  prompt    current, version, version_dict, history, diff_pair, diff, set_prompt, propose, rollback

Does not own: the data (store.py, memory.py, selfprompt.py, tuning.py, reward.py ...) or how
any front end lays out what an action returns.
"""


class Problem(Exception):
    """Something the user can fix; the message says what."""
