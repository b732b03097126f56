"""Business logic. Nothing here imports FastAPI."""
