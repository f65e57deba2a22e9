"""Server-rendered pages for supervisors, legal reviewers and management (served under /ui)."""

from gateway.web.routes import router
from gateway.web.staff import router as staff_router

router.include_router(staff_router)  # issue 8: the staff workspace under /ui/staff

__all__ = ["router"]
