"""Server-rendered pages for supervisors, legal reviewers and management (served under /ui)."""

from gateway.web.routes import router

__all__ = ["router"]
