"""Request and asset state in the database, so that any gateway process can answer a poll."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.models import AssetRow, RequestRow


@dataclass(frozen=True)
class AssetState:
    id: str
    request_id: str
    position: int
    status: str
    mime: str
    blob: str | None
    held_blob: str | None
    sha256: str | None
    manifest_id: str | None
    seed: int
    created_at: datetime
    released_at: datetime | None


@dataclass(frozen=True)
class RequestState:
    id: str
    tenant: str
    key_id: str
    endpoint: str
    status: str
    response_format: str
    mamori: dict[str, Any]
    created_at: datetime
    assets: tuple[AssetState, ...]


@dataclass(frozen=True)
class NewAsset:
    id: str
    position: int
    status: str
    mime: str
    seed: int
    blob: str | None = None
    held_blob: str | None = None
    sha256: str | None = None
    manifest_id: str | None = None


class RequestStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def save(
        self,
        *,
        request_id: str,
        tenant: str,
        key_id: str,
        endpoint: str,
        status: str,
        response_format: str,
        mamori: dict[str, Any],
        assets: list[NewAsset],
    ) -> None:
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            session.add(
                RequestRow(
                    id=request_id,
                    tenant=tenant,
                    key_id=key_id,
                    endpoint=endpoint,
                    status=status,
                    response_format=response_format,
                    mamori_json=json.dumps(mamori, sort_keys=True),
                    created_at=now,
                    updated_at=now,
                )
            )
            session.flush()
            for a in assets:
                session.add(
                    AssetRow(
                        id=a.id,
                        request_id=request_id,
                        position=a.position,
                        status=a.status,
                        mime=a.mime,
                        blob=a.blob,
                        held_blob=a.held_blob,
                        sha256=a.sha256,
                        manifest_id=a.manifest_id,
                        seed=a.seed,
                        created_at=now,
                        released_at=now if a.status == "released" else None,
                    )
                )

    def get(self, request_id: str) -> RequestState | None:
        with self._sessions() as session:
            row = session.get(RequestRow, request_id)
            if row is None:
                return None
            assets = session.scalars(
                select(AssetRow).where(AssetRow.request_id == request_id).order_by(AssetRow.position)
            ).all()
            return _request(row, [_asset(a) for a in assets])

    def get_asset(self, asset_id: str) -> AssetState | None:
        with self._sessions() as session:
            row = session.get(AssetRow, asset_id)
            return _asset(row) if row else None

    def find_asset_by_manifest(self, manifest_id: str) -> AssetState | None:
        with self._sessions() as session:
            row = session.scalars(select(AssetRow).where(AssetRow.manifest_id == manifest_id)).first()
            return _asset(row) if row else None

    def resolve(
        self,
        request_id: str,
        *,
        status: str,
        mamori: dict[str, Any],
        released: dict[str, tuple[str, str, str]] | None = None,
        drop_held: bool = False,
    ) -> None:
        """Finish a held request. `released` maps asset id -> (blob, sha256, manifest id)."""
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            row = session.get(RequestRow, request_id)
            if row is None:
                raise LookupError(request_id)
            row.status = status
            row.mamori_json = json.dumps(mamori, sort_keys=True)
            row.updated_at = now
            for asset in session.scalars(select(AssetRow).where(AssetRow.request_id == request_id)):
                if released and asset.id in released:
                    asset.blob, asset.sha256, asset.manifest_id = released[asset.id]
                    asset.status = "released"
                    asset.released_at = now
                    asset.held_blob = None
                elif drop_held and asset.status == "held":
                    asset.status = "refused"

    def withdraw(self, request_id: str, *, code: str, message: str) -> bool:
        """Fail a stored request closed: it and every asset of it end refused. False if nothing was stored."""
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            row = session.get(RequestRow, request_id)
            if row is None:
                return False
            mamori = json.loads(row.mamori_json)
            mamori.update(status="refused", decision="block", manifest_ids=[])
            mamori["reasons"] = [*mamori.get("reasons", []), {"code": code, "detector": "gateway", "message": message}]
            row.status = "refused"
            row.mamori_json = json.dumps(mamori, sort_keys=True)
            row.updated_at = now
            for asset in session.scalars(select(AssetRow).where(AssetRow.request_id == request_id)):
                asset.status = "refused"
            return True

    def held_blob_shared(self, digest: str, *, other_than: str) -> bool:
        """Whether another request's held asset still points at this content-addressed blob."""
        with self._sessions() as session:
            found = session.scalars(
                select(AssetRow.id).where(
                    AssetRow.held_blob == digest, AssetRow.status == "held", AssetRow.request_id != other_than
                )
            ).first()
            return found is not None


def _asset(row: AssetRow) -> AssetState:
    return AssetState(
        id=row.id,
        request_id=row.request_id,
        position=row.position,
        status=row.status,
        mime=row.mime,
        blob=row.blob,
        held_blob=row.held_blob,
        sha256=row.sha256,
        manifest_id=row.manifest_id,
        seed=row.seed,
        created_at=row.created_at,
        released_at=row.released_at,
    )


def _request(row: RequestRow, assets: list[AssetState]) -> RequestState:
    return RequestState(
        id=row.id,
        tenant=row.tenant,
        key_id=row.key_id,
        endpoint=row.endpoint,
        status=row.status,
        response_format=row.response_format,
        mamori=json.loads(row.mamori_json),
        created_at=row.created_at,
        assets=tuple(assets),
    )
