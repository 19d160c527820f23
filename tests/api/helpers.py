"""Helpers for API tests: uploads, problem-details checks, and a look at what got stored."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from repository.config import get_settings

API = "/api/v1"
DOCS = f"{API}/documents"
PROBLEM = "application/problem+json"


def upload(client, account, data: bytes = b"hello postroom", *, title: str = "A document",  # noqa: ANN001
           document_type: str = "general", filename: str = "note.txt", customer_id: str | None = None,
           metadata: dict | str | None = None, headers: dict[str, str] | None = None):  # noqa: ANN201
    """POST /documents as multipart, the way a client would."""
    fields: dict[str, str] = {"title": title, "document_type": document_type}
    if customer_id is not None:
        fields["customer_id"] = customer_id
    if metadata is not None:
        fields["metadata"] = metadata if isinstance(metadata, str) else json.dumps(metadata)
    return client.post(DOCS, data=fields, files={"file": (filename, data, "application/octet-stream")},
                       headers={**account.headers, **(headers or {})})


def create_document(client, account, data: bytes = b"hello postroom", **kwargs) -> dict:  # noqa: ANN001
    """Upload and insist it worked; the 201 body."""
    response = upload(client, account, data, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


def create_customer(client, account, external_ref: str = "C-1", name: str = "Ada Lovelace") -> dict:  # noqa: ANN001
    """Register a customer and insist it worked."""
    response = client.post(f"{API}/customers", json={"external_ref": external_ref, "name": name},
                           headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


def create_type(client, admin, name: str, *, read_roles: list[str], write_roles: list[str],  # noqa: ANN001
                allowed_media_types: list[str] | None = None) -> dict:
    """Create a document type as an admin and insist it worked."""
    response = client.post(f"{API}/document-types", headers=admin.headers, json={
        "name": name, "read_roles": read_roles, "write_roles": write_roles,
        "allowed_media_types": allowed_media_types or [],
    })
    assert response.status_code == 201, response.text
    return response.json()


def checkin(client, account, document_id: str, data: bytes, *, major: bool | None = None,  # noqa: ANN001
            comment: str | None = None):  # noqa: ANN201
    """POST /documents/{id}/checkin as multipart."""
    fields: dict[str, str] = {}
    if major is not None:
        fields["major"] = "true" if major else "false"
    if comment is not None:
        fields["comment"] = comment
    return client.post(f"{DOCS}/{document_id}/checkin", data=fields,
                       files={"file": ("next.txt", data, "application/octet-stream")}, headers=account.headers)


def assert_problem(response, status: int, *words: str) -> dict:  # noqa: ANN001
    """The response is an RFC 9457 problem with this status and a detail mentioning each word."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert isinstance(body["detail"], str) and body["detail"].strip(), body
    for word in words:
        assert word.lower() in body["detail"].lower(), f"{word!r} not in detail {body['detail']!r}"
    return body


def all_documents(client, account, **params: str) -> list[dict]:  # noqa: ANN001
    """Every document the account can list, following next_cursor."""
    items: list[dict] = []
    cursor = None
    while True:
        query = {"limit": "200", **params, **({"cursor": cursor} if cursor else {})}
        response = client.get(DOCS, params=query, headers=account.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def stored_files() -> set[Path]:
    """Every file under the blob store and the upload scratch directory."""
    settings = get_settings()
    found: set[Path] = set()
    for root in (settings.blob_dir, settings.tmp_dir):
        if root.exists():
            found |= {p for p in root.rglob("*") if p.is_file()}
    return found


def docx(document_xml: bytes) -> bytes:
    """A minimal OOXML word-processing package with the given word/document.xml."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0" encoding="UTF-8"?>'
                   '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                   '<Default Extension="xml" ContentType="application/xml"/>'
                   '<Override PartName="/word/document.xml" ContentType="application/'
                   'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
        z.writestr("_rels/.rels",
                   '<?xml version="1.0" encoding="UTF-8"?>'
                   '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                   '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                   'relationships/officeDocument" Target="word/document.xml"/></Relationships>')
        z.writestr("word/document.xml", document_xml)
    return buffer.getvalue()


PLAIN_DOCUMENT_XML = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                      b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
                      b'<w:body><w:p><w:r><w:t>Dear customer</w:t></w:r></w:p></w:body></w:document>')
