"""The frame-by-frame journal/Valkey comparison moved to app.io.valkey_compare (the soak uses it too)."""
from app.io.valkey_compare import missing_frames, missing_in_embedded  # noqa: F401
