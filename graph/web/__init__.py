"""Web front ends: the HTTP/WebSocket API and the Streamlit UI."""
