"""Limits shared by the data readers and the HTTP service, so that what one accepts the other
does too (kept here, free of imports, so the service does not load the data layer)."""

MAX_ID_CHARS = 1024  # an id read from a file can always be sent back to the service
