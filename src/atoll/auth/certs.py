"""The cluster's certificate authority, its region certificates and its data key.

Theory of operation
- Regions talk over mutual TLS, and a node must know *which region* is on the other
  end: a pull acknowledges changes on behalf of a region, so a stranger claiming to be
  a region could make the others purge their changelogs. Identity therefore comes from
  a certificate signed by the cluster's own CA (made here, trusted by nothing else),
  whose subject alternative name is the URI `atoll://<cluster-id>/region/<region>`
  (CN is the region too, for people reading it). A node trusts only this CA for peer
  links, so a certificate from a public CA, or from another Atoll cluster's CA, names
  no region here.
- The CA certificate carries the cluster id as the URI `atoll://<cluster-id>`, so
  `atoll certs region` issues certificates for the right cluster from the CA alone.
- Region certificates also list the DNS names and IP addresses their node is reached
  at (`--host`), so peers can check the host name as any TLS client would; they are
  valid for both TLS server and client authentication (a node is both).
- Keys are ECDSA P-256: small, fast to handshake, supported by every TLS stack. Private
  keys and the data key are written with mode 0600 and never overwritten by accident:
  replacing the CA key would cut every region off from the others.
- The cluster data key (32 random bytes) seals access-key secrets in the replicated key
  records (`atoll.auth.keys`). It is made with the CA because every node needs both.
- Time is an argument (`now`), so certificates with any validity can be made in tests.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atoll.auth.keys import DATA_KEY_BYTES

URI_SCHEME = "atoll://"
CA_VALIDITY_DAYS = 3650
REGION_VALIDITY_DAYS = 1825
DEFAULT_HOSTS = ("127.0.0.1", "::1", "localhost")
MAX_CLUSTER_ID_CHARS = 128
_DATA_KEY_BEGIN = "-----BEGIN ATOLL DATA KEY-----"
_DATA_KEY_END = "-----END ATOLL DATA KEY-----"


@dataclass(frozen=True)
class ClusterFiles:
    """Where `atoll certs` keeps things under one directory."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def data_key(self) -> Path:
        return self.directory / "data.key"

    def region_cert(self, region: str) -> Path:
        return self.directory / f"region-{region}.crt"

    def region_key(self, region: str) -> Path:
        return self.directory / f"region-{region}.key"


def region_uri(cluster_id: str, region: str) -> str:
    return f"{URI_SCHEME}{quote(cluster_id, safe='')}/region/{region}"


def parse_region_uri(uri: str) -> tuple[str, str] | None:
    """(cluster id, region) of an `atoll://<cluster>/region/<region>` URI, else None."""
    if not uri.startswith(URI_SCHEME):
        return None
    parts = uri[len(URI_SCHEME):].split("/")
    if len(parts) != 3 or parts[1] != "region" or not parts[0] or not valid_region(parts[2]):
        return None
    return unquote(parts[0]), parts[2]


def valid_region(region: str) -> bool:
    """The topology's rule for region ids: [a-z0-9][a-z0-9-]{0,62}."""
    return 1 <= len(region) <= 63 and region.isascii() and region[0].isalnum() \
        and region == region.lower() and all(c.isalnum() or c == "-" for c in region)


def _check_cluster_id(cluster_id: str) -> None:
    if not 1 <= len(cluster_id) <= MAX_CLUSTER_ID_CHARS or not cluster_id.isprintable() \
            or not cluster_id.isascii():
        raise ValueError(f"a cluster id is 1-{MAX_CLUSTER_ID_CHARS} printable ASCII characters")


def new_cluster_id() -> str:
    return "atoll-" + secrets.token_hex(6)


def init_cluster(files: ClusterFiles, cluster_id: str, now: datetime.datetime,
                 validity_days: int = CA_VALIDITY_DAYS) -> None:
    """Make the CA (key and self-signed certificate) and the data key under `files`.
    Refuses (FileExistsError) if any of them exists."""
    _check_cluster_id(cluster_id)
    for path in (files.ca_key, files.ca_cert, files.data_key):
        if path.exists():
            raise FileExistsError(f"{path} exists; a cluster's CA is made once")
    files.directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "atoll"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "atoll cluster CA")])
    public = key.public_key()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=validity_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                URI_SCHEME + quote(cluster_id, safe=""))]), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(files.ca_key, _key_pem(key))
    _write_private(files.data_key, encode_data_key(secrets.token_bytes(DATA_KEY_BYTES)))
    _write_public(files.ca_cert, cert.public_bytes(serialization.Encoding.PEM))


def cluster_id_of(ca_cert: x509.Certificate) -> str:
    """The cluster id a CA certificate names (ValueError if it names none)."""
    try:
        names = ca_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    for uri in names.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(URI_SCHEME) and "/" not in uri[len(URI_SCHEME):]:
            return unquote(uri[len(URI_SCHEME):])
    raise ValueError("this CA certificate names no Atoll cluster")


def issue_region_cert(files: ClusterFiles, region: str, hosts: Sequence[str],
                      now: datetime.datetime, validity_days: int = REGION_VALIDITY_DAYS,
                      overwrite: bool = False) -> tuple[Path, Path]:
    """Make region `region`'s key and certificate, signed by the CA under `files`.
    Returns (certificate path, key path)."""
    if not valid_region(region):
        raise ValueError(f"region ids look like [a-z0-9][a-z0-9-]{{0,62}}, got {region!r}")
    if not overwrite and (files.region_cert(region).exists()
                          or files.region_key(region).exists()):
        raise FileExistsError(f"{files.region_cert(region)} exists (renew with overwrite)")
    ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{files.ca_key} is not an EC private key")
    cluster_id = cluster_id_of(ca_cert)
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(
        region_uri(cluster_id, region))]
    alt_names += [_host_name(host) for host in dict.fromkeys(hosts or DEFAULT_HOSTS)]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "atoll"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, region)]))
            .issuer_name(ca_cert.subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + datetime.timedelta(days=validity_days),
                                 ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = files.region_cert(region), files.region_key(region)
    for path in (cert_path, key_path):
        if overwrite and path.exists():
            path.unlink()
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        if not host or not host.isascii() or any(c.isspace() for c in host):
            raise ValueError(f"not a host name or IP address: {host!r}") from None
        return x509.DNSName(host.lower())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 (never over an existing file) and write `data`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_public(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def encode_data_key(data_key: bytes) -> bytes:
    if len(data_key) != DATA_KEY_BYTES:
        raise ValueError(f"a cluster data key is {DATA_KEY_BYTES} bytes")
    return f"{_DATA_KEY_BEGIN}\n{base64.b64encode(data_key).decode()}\n{_DATA_KEY_END}\n" \
        .encode("ascii")


def read_data_key(path: Path) -> bytes:
    """The 32-byte cluster data key in `path` (ValueError if the file is not one)."""
    try:
        text = path.read_text("ascii").strip().splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not an Atoll data key file") from None
    if len(text) != 3 or text[0] != _DATA_KEY_BEGIN or text[2] != _DATA_KEY_END:
        raise ValueError(f"{path} is not an Atoll data key file")
    try:
        key = base64.b64decode(text[1], validate=True)
    except ValueError:
        raise ValueError(f"{path} is not an Atoll data key file") from None
    if len(key) != DATA_KEY_BYTES:
        raise ValueError(f"{path} does not hold a {DATA_KEY_BYTES}-byte key")
    return key
