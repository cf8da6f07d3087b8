"""Web front ends: the HTTP/WebSocket API (`agent.py serve`) and the Streamlit UI (`agent.py ui`).

api.py: the FastAPI app and its routes (translating graph/actions and the session's turns to
HTTP); turns.py: the API's turns on a worker thread as JSON events, and their approvals;
auth.py: the API token and the allowed origins; ui/: the Streamlit app. Starting either is
the CLI's (cli/serve.py, cli/ui.py). Does not own: any action (graph/actions) or the session.
"""
