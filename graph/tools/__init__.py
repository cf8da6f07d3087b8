"""The agent's tools: typed functions with docstrings, collected in `TOOLS`.

Later issues add web, shell, files, MCP and self-made tools here, one file each.
"""

from graph.tools.clock import current_time

TOOLS = [current_time]
