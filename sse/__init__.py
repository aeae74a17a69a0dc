"""Live drop status over Server-Sent Events (ASGI: starlette + sse-starlette)."""
