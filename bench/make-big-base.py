#!/usr/bin/env python3
"""Writes an OCI image layout holding a multi-platform base image whose every platform has
one layer of SIZE_MB megabytes of random bytes (gzip with stored blocks, so it is as large
compressed as not), tagged `1`: the big base of `bench/big-base` and of the big-base test.

Usage: make-big-base.py LAYOUT_DIR SIZE_MB PLATFORM...   (PLATFORM as linux/amd64)
Push it with `skopeo copy --all oci:LAYOUT_DIR:1 docker://HOST/REPO:1`.
"""
import hashlib
import json
import os
import sys
import zlib

CHUNK = 1 << 20


def blob(layout, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest[7:]), "wb") as out:
        out.write(data)
    return {"digest": digest, "size": len(data)}


def tar_header(name, size):
    header = bytearray(512)
    fields = [
        (0, name.encode()),
        (100, b"0000644"),
        (108, b"0000000"),
        (116, b"0000000"),
        (124, b"%011o" % size),
        (136, b"00000000000"),
        (257, b"ustar\x0000"),
    ]
    for at, value in fields:
        header[at:at + len(value)] = value
    header[156] = ord("0")
    header[148:156] = b"        "
    header[148:156] = b"%06o\x00 " % sum(header)
    return bytes(header)


def layer(layout, size):
    """A gzip tar of one random file, streamed to disk: its descriptor and diff_id."""
    tar_hash, gz_hash = hashlib.sha256(), hashlib.sha256()
    compressor = zlib.compressobj(0, zlib.DEFLATED, 31)
    temporary = os.path.join(layout, "blobs", "sha256", "partial")
    written = 0
    with open(temporary, "wb") as out:
        def put(data):
            nonlocal written
            tar_hash.update(data)
            packed = compressor.compress(data)
            gz_hash.update(packed)
            out.write(packed)
            written += len(packed)

        put(tar_header("data/random", size))
        left = size
        while left:
            chunk = os.urandom(min(CHUNK, left))
            put(chunk)
            left -= len(chunk)
        put(b"\0" * ((512 - size % 512) % 512) + b"\0" * 1024)
        tail = compressor.flush()
        gz_hash.update(tail)
        out.write(tail)
        written += len(tail)
    digest = "sha256:" + gz_hash.hexdigest()
    os.rename(temporary, os.path.join(layout, "blobs", "sha256", digest[7:]))
    return {"digest": digest, "size": written}, "sha256:" + tar_hash.hexdigest()


def main():
    layout, size_mb, platforms = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    manifests = []
    for platform in platforms:
        os_name, arch, *variant = platform.split("/")
        descriptor, diff_id = layer(layout, size_mb * 1000 * 1000)
        config = {
            "architecture": arch,
            "os": os_name,
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        if variant:
            config["variant"] = variant[0]
        config_descriptor = blob(layout, json.dumps(config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_descriptor},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **descriptor}],
        }
        entry = {"mediaType": manifest["mediaType"], **blob(layout, json.dumps(manifest).encode())}
        entry["platform"] = {"architecture": arch, "os": os_name}
        if variant:
            entry["platform"]["variant"] = variant[0]
        manifests.append(entry)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    top = {"mediaType": index["mediaType"], **blob(layout, json.dumps(index).encode())}
    top["annotations"] = {"org.opencontainers.image.ref.name": "1"}
    with open(os.path.join(layout, "index.json"), "w") as out:
        json.dump({"schemaVersion": 2, "manifests": [top]}, out)
    with open(os.path.join(layout, "oci-layout"), "w") as out:
        out.write('{"imageLayoutVersion":"1.0.0"}')


if __name__ == "__main__":
    main()
