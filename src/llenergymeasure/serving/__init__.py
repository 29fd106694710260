"""Serving mode: a server's lifecycle, arrival processes, the streaming load generator,
its ``/metrics`` and the steady-state window (DESIGN §4, serving mode)."""
