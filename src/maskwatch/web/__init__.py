"""The web app and REST API behind ``maskwatch serve``: ``create_app(...)`` builds the FastAPI app."""

from maskwatch.web.app import create_app

__all__ = ["create_app"]
