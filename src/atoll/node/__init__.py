"""The asyncio shell that runs a region: drives replication with storage + transport."""
