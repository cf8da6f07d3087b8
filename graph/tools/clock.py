"""`current_time`: the one harmless tool of the foundation (the model cannot know the time)."""

from datetime import datetime

from langchain_core.tools import tool


@tool
def current_time() -> str:
    """Return the current local date, time and time zone. Use it when asked what time or day it is."""
    now = datetime.now().astimezone()
    return now.strftime("%A %Y-%m-%d %H:%M:%S %Z (UTC%z)")
