"""The central sync server: ingest of gate streams, enrolment, admin pulls.

``sync.server.app.create_app`` builds the FastAPI app; this package's ``__init__``
imports nothing, so `gate-sync` commands that only need ``auth`` do not load FastAPI.
"""
