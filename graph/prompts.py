"""Prompt templates, nothing else.

The system prompt itself comes from config.yaml (and, in later issues, from the
agent's own versioned rewrites); these are the fixed texts around it.
"""

SYSTEM = """{system_prompt}

Current date: {today}."""

# The embedded model's constrained tool decision, appended after the conversation so the
# stable prefix of the prompt stays cached. Wording and option order were chosen by trying
# variants on SmolLM2-135M (tools first, `none` last was the most accurate).
TOOL_DECISION = """Which tool is needed to answer the message above?
{tools}
- none: no tool needed
Reply in JSON as {{"tool": "..."}}."""

TOOL_ARGUMENTS = "Give the arguments for {name} in JSON."

TOOL_RESULT_NOTE = "(The tool {name} returned: {result})\nUse this to answer."
