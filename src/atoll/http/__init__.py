"""HTTP/1.1 on asyncio (uvloop) with httptools parsing: the server every listener uses
(client port, peer port, `atoll proxy`), the small keep-alive client nodes and the proxy
call peers with, and the server-side request timing. No DynamoDB semantics here."""
