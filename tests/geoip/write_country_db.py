"""Writes a small MaxMind DB country database for the GeoIP tests (tests/it/context.rs).

Usage: write_country_db.py OUT.mmdb NETWORK=CC [NETWORK=CC ...]
e.g.   write_country_db.py countries.mmdb 203.0.113.0/24=DE 2001:db8::/32=FR

Records have the GeoIP2-Country shape ({"country": {"iso_code": ...}}), in an IPv6 tree that
also answers IPv4 addresses, like MaxMind's own databases.
"""

import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet


def main() -> None:
    out, *networks = sys.argv[1:]
    writer = MMDBWriter(
        ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True
    )
    for entry in networks:
        network, country = entry.split("=")
        writer.insert_network(IPSet([network]), {"country": {"iso_code": country}})
    writer.to_db_file(out)


if __name__ == "__main__":
    main()
