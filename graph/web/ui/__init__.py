"""The Streamlit web UI (`agent.py ui`): app.py is the script Streamlit runs; one module per page
(chat, monitoring, learning, evolution) and live.py for the turn running in the background.
"""
