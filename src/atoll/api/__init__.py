"""DynamoDB JSON 1.0 protocol: operations, request validation, error shapes (pure).

`dispatch.Api` turns (target header, body bytes) into (status, body bytes); the HTTP
server in `atoll.http` only moves bytes.
"""
