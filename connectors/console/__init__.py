"""The agent console: a server-rendered web app (Sanic + Jinja2) where people take handoffs."""
