"""The HTTP front door: HTTP/1.1 keep-alive on asyncio (uvloop) with httptools parsing."""
