"""What a user can do with the agent, once, for every front end: the CLI (graph/cli), the REPL's
slash commands, the agent's own tools (graph/tools), Studio and the web API and UI.

Each module owns one group of actions as plain, typed functions that take the session's
services (the Context, the Store, the backend) explicitly and return data; none prints.
A mistake the user can fix is a `Problem`, whose message says what (each front end shows it
its own way). Sending a turn and streaming its events is `graph.session.Session.turn()`.

  history    history, page, search, why, backup
  status     status (the snapshot `agent.py status` and /status show), settings_origins
  learning   state, summary, preferences, extra_calls, overview, switch, undo_preference
  rewards    rate, explain, report, curve, policy, MEANINGS, BLOCK
  memory     memories, listing, search, add, forget, consolidate, row
  prompt     current, version, version_dict, history, diff_pair, diff, set_prompt, propose, rollback
  examples   listing, counts, get, latest_turn, add, edit, remove, export (the tuning data)
  evolution  busy, start, run, runs, status, lineage, promote, rollback

This layer sits below the agent's tools (tests/importlinter.ini), which call it too; so the
actions on the tools themselves stay in graph/tools, already plain functions returning data:
tools.listing (list), tools.run_one (run one directly), tools.made.remove, tools.files.undo.
Does not own: the data (store.py, memory/memories.py, selfprompt.py, tuning.py, reward.py ...) or how
any front end lays out what an action returns.
"""


class Problem(Exception):
    """Something the user can fix; the message says what."""
