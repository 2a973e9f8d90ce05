"""
Serve: runs only in ASGI servers. The WebSocket consumer, the process's hub that fans
updates out to sockets, and the limits and checks that guard them.
"""
