"""Authentication and authorization.

- `sigv4`: verification of AWS Signature Version 4 on client requests (pure); it builds
  the canonical request with `canonical` and reads request times with `timestamps`.
- `keys`: access keys, their secrets, and their sealed stored form (pure).
- `permissions`: which operations and tables each role and key may touch (pure).
- `errors`: the exceptions all of these raise (mapped to DynamoDB shapes in `api`).
- `certs`: the cluster CA, region certificates and the cluster data key (files).
- `tls`: `ssl.SSLContext`s for the peer and client ports, and the region a verified
  peer certificate names.
"""
