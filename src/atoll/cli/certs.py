"""`atoll certs` — the cluster CA, region certificates and the cluster data key.

    atoll certs init --dir D [--cluster-id X]
        D/ca.crt, D/ca.key (0600): the cluster CA (ECDSA P-256, self-signed, 10 years);
        D/data.key (0600): the 32-byte key that seals access-key secrets.
    atoll certs region --dir D --region R [--host 127.0.0.1 --host node-a.example]
        D/region-R.crt, D/region-R.key (0600): R's certificate, signed by the CA, naming
        atoll://<cluster-id>/region/R (and CN=R) plus DNS/IP names for its hosts.

Every node needs ca.crt, data.key and its own region's certificate and key; only the
machine that issues certificates needs ca.key.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import click
from cryptography import x509

from atoll.auth.certs import (
    CA_VALIDITY_DAYS,
    DEFAULT_HOSTS,
    REGION_VALIDITY_DAYS,
    ClusterFiles,
    cluster_id_of,
    init_cluster,
    issue_region_cert,
    new_cluster_id,
)


@click.group()
def certs() -> None:
    """Make the cluster CA, region certificates and the cluster data key."""


@certs.command("init")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path),
              help="Directory for the CA and data key (created if missing).")
@click.option("--cluster-id", default=None,
              help="The topology's cluster id (default: a new random one).")
@click.option("--days", default=CA_VALIDITY_DAYS, show_default=True, type=click.IntRange(1),
              help="How long the CA certificate is valid.")
def init(directory: Path, cluster_id: str | None, days: int) -> None:
    """Make the cluster CA (key + self-signed certificate) and the data key."""
    files = ClusterFiles(directory)
    cluster_id = cluster_id or new_cluster_id()
    try:
        init_cluster(files, cluster_id, datetime.datetime.now(datetime.UTC), days)
    except (FileExistsError, ValueError) as problem:
        raise click.ClickException(str(problem)) from None
    click.echo(f"cluster {cluster_id}: CA {files.ca_cert} (key {files.ca_key}), "
               f"data key {files.data_key}")
    click.echo("Keep ca.key on the machine that issues certificates; give every node "
               "ca.crt, data.key and its region's certificate and key "
               "(atoll certs region).")


@certs.command("region")
@click.option("--dir", "directory", required=True,
              type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="The directory `atoll certs init` wrote.")
@click.option("--region", required=True, help="The region id, as in the topology.")
@click.option("--host", "hosts", multiple=True,
              help="A DNS name or IP address the region's node is reached at "
                   f"(repeatable; default: {', '.join(DEFAULT_HOSTS)}).")
@click.option("--days", default=REGION_VALIDITY_DAYS, show_default=True,
              type=click.IntRange(1), help="How long the certificate is valid.")
@click.option("--force", is_flag=True, help="Replace an existing certificate (renewal).")
def region(directory: Path, region: str, hosts: tuple[str, ...], days: int,
           force: bool) -> None:
    """Make a region certificate signed by the cluster CA."""
    files = ClusterFiles(directory)
    if not files.ca_cert.exists() or not files.ca_key.exists():
        raise click.ClickException(f"no CA in {directory}: run `atoll certs init` first")
    try:
        cert_path, key_path = issue_region_cert(
            files, region, list(hosts), datetime.datetime.now(datetime.UTC), days, force)
    except (FileExistsError, ValueError) as problem:
        raise click.ClickException(str(problem)) from None
    cluster_id = cluster_id_of(x509.load_pem_x509_certificate(files.ca_cert.read_bytes()))
    click.echo(f"region {region} of cluster {cluster_id}: {cert_path} (key {key_path}), "
               f"hosts {', '.join(hosts or DEFAULT_HOSTS)}")
