"""The decision API (FastAPI): app builder, dependencies and one router per resource."""
