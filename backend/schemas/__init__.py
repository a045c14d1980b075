"""The API's request and response shapes, one module per area. Every route declares its response model
from here (or a ``XPublic`` family in :mod:`backend.models`) and the error responses it can return
(:func:`backend.schemas.common.errors`), so the OpenAPI document describes every body the service sends."""
