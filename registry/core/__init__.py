"""Pure code shared by the registry, its clients and its workers.

Nothing here imports litestar, sqlalchemy, boto3 or httpx: only the standard
library, blake3, cryptography, rfc8785 and msgspec (checked by import-linter).
"""
