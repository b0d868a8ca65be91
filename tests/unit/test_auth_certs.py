"""`atoll certs`: the CA, region certificates, the data key, and reading a peer's region."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from atoll.auth.certs import (
    ClusterFiles,
    cluster_id_of,
    encode_data_key,
    init_cluster,
    issue_region_cert,
    parse_region_uri,
    read_data_key,
    region_uri,
)
from atoll.auth.tls import peer_region
from atoll.cli.main import cli

NOW = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def files(tmp_path: Path) -> ClusterFiles:
    f = ClusterFiles(tmp_path / "certs")
    init_cluster(f, "prod 1/eu", NOW)
    return f


def test_init_makes_a_ca_and_a_data_key_with_private_modes(files: ClusterFiles) -> None:
    assert mode(files.ca_key) == 0o600 and mode(files.data_key) == 0o600
    assert mode(files.ca_cert) == 0o644
    ca = load(files.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca.verify_directly_issued_by(ca)
    assert cluster_id_of(ca) == "prod 1/eu"
    assert ca.not_valid_after_utc - NOW > datetime.timedelta(days=3600)
    assert len(read_data_key(files.data_key)) == 32
    assert b"PRIVATE KEY" in files.ca_key.read_bytes()


def test_init_never_replaces_a_ca(files: ClusterFiles) -> None:
    before = files.ca_key.read_bytes()
    with pytest.raises(FileExistsError):
        init_cluster(files, "another", NOW)
    assert files.ca_key.read_bytes() == before


def test_region_certificate_names_its_region_and_hosts(files: ClusterFiles) -> None:
    cert_path, key_path = issue_region_cert(
        files, "eu-west", ["127.0.0.1", "Node-A.example", "::1"], NOW)
    assert mode(key_path) == 0o600
    cert, ca = load(cert_path), load(files.ca_cert)
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [
        "atoll://prod%201%2Feu/region/eu-west"]
    assert names.get_values_for_type(x509.DNSName) == ["node-a.example"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "eu-west"
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_region_certificates_end_no_later_than_the_ca(tmp_path: Path) -> None:
    f = ClusterFiles(tmp_path)
    init_cluster(f, "c", NOW, validity_days=10)
    cert_path, _ = issue_region_cert(f, "r1", [], NOW, validity_days=1000)
    assert load(cert_path).not_valid_after_utc == load(f.ca_cert).not_valid_after_utc


def test_region_rules(files: ClusterFiles) -> None:
    for bad in ("EU-WEST", "-x", "a" * 64, "eu_west", ""):
        with pytest.raises(ValueError):
            issue_region_cert(files, bad, [], NOW)
    with pytest.raises(ValueError):
        issue_region_cert(files, "r", ["not a host"], NOW)
    first, _ = issue_region_cert(files, "r", [], NOW)
    before = first.read_bytes()
    with pytest.raises(FileExistsError):
        issue_region_cert(files, "r", [], NOW)
    issue_region_cert(files, "r", [], NOW, overwrite=True)
    assert first.read_bytes() != before


def test_data_key_files(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(encode_data_key(bytes(range(32))))
    assert read_data_key(path) == bytes(range(32))
    for text in (b"", b"garbage", encode_data_key(bytes(32)).replace(b"AAAA", b"AA", 1),
                 b"\xff\xfe", encode_data_key(bytes(32)).replace(b"DATA", b"DARK")):
        path.write_bytes(text)
        with pytest.raises(ValueError):
            read_data_key(path)
    with pytest.raises(ValueError):
        encode_data_key(bytes(16))


@pytest.mark.parametrize("cluster_id", ["atoll-local", "prod 1/eu", "ü", "a:b@c"])
def test_region_uris_round_trip(cluster_id: str) -> None:
    assert parse_region_uri(region_uri(cluster_id, "us-east")) == (cluster_id, "us-east")


@pytest.mark.parametrize("uri", ["https://x/region/r", "atoll://c/region/R", "atoll://c/r",
                                 "atoll:///region/r", "atoll://c/region/r/x", "atoll://c"])
def test_other_uris_name_no_region(uri: str) -> None:
    assert parse_region_uri(uri) is None


def _peer(*uris: str, cn: str | None = "us-east") -> dict[str, object]:
    subject = ((("organizationName", "atoll"),),) + (((("commonName", cn),),) if cn else ())
    return {"subject": subject,
            "subjectAltName": (("DNS", "localhost"), *(("URI", u) for u in uris),
                               ("IP Address", "127.0.0.1"))}


def test_peer_region_reads_a_verified_certificate() -> None:
    uri = "atoll://c1/region/us-east"
    assert peer_region(_peer(uri)) == "us-east"
    assert peer_region(_peer(uri), "c1") == "us-east"
    assert peer_region(_peer(uri, cn=None), "c1") == "us-east"
    assert peer_region(_peer(uri), "c2") is None
    assert peer_region(_peer(uri, "atoll://c2/region/us-east"), "c1") is None
    assert peer_region(_peer(uri, "atoll://c1/region/eu-west")) is None
    assert peer_region(_peer(uri, uri)) == "us-east"
    assert peer_region(_peer(uri, cn="eu-west")) is None
    assert peer_region(_peer("https://example.com/")) is None
    assert peer_region(_peer()) is None
    assert peer_region({}) is None  # what getpeercert() returns for an unverified peer
    assert peer_region(None) is None


def test_cli_init_and_region(tmp_path: Path) -> None:
    runner = CliRunner()
    directory = tmp_path / "d"
    result = runner.invoke(cli, ["certs", "init", "--dir", str(directory)])
    assert result.exit_code == 0, result.output
    cluster_id = cluster_id_of(load(ClusterFiles(directory).ca_cert))
    assert cluster_id.startswith("atoll-") and cluster_id in result.output
    again = runner.invoke(cli, ["certs", "init", "--dir", str(directory), "--cluster-id", "x"])
    assert again.exit_code != 0 and "exists" in again.output
    result = runner.invoke(cli, ["certs", "region", "--dir", str(directory), "--region",
                                 "ap-south", "--host", "10.1.2.3", "--host", "db.example"])
    assert result.exit_code == 0, result.output
    assert "10.1.2.3, db.example" in result.output
    assert (directory / "region-ap-south.crt").exists()
    bad = runner.invoke(cli, ["certs", "region", "--dir", str(directory), "--region", "X"])
    assert bad.exit_code != 0 and "region ids" in bad.output
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = runner.invoke(cli, ["certs", "region", "--dir", str(empty), "--region", "r"])
    assert missing.exit_code != 0 and "atoll certs init" in missing.output
