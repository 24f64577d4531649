"""Python s3fs/fsspec (what pandas and Dask use for s3:// paths) against a Cairn endpoint:
text and binary files through `S3FileSystem.open`, seeks, a multipart write, listings,
info, copy, find and recursive delete. The only setting is the endpoint URL.

Usage: python fsspec_checks.py ENDPOINT ACCESS_KEY SECRET_KEY
"""
import sys, hashlib, os
import s3fs
endpoint, key, secret = sys.argv[1:4]
fs = s3fs.S3FileSystem(key=key, secret=secret, client_kwargs={"endpoint_url": endpoint})
fs.mkdir("fsspec-bkt")
with fs.open("fsspec-bkt/table.csv", "w") as f:
    f.write("a,b\n1,2\n3,4\n")
with fs.open("fsspec-bkt/table.csv") as f:
    assert f.read() == b"a,b\n1,2\n3,4\n"
big = os.urandom(12 * 1024 * 1024 + 5)
with fs.open("fsspec-bkt/dir/big.bin", "wb", block_size=5 * 1024 * 1024) as f:
    f.write(big)
with fs.open("fsspec-bkt/dir/big.bin", "rb") as f:
    f.seek(1000)
    assert f.read(100) == big[1000:1100]
assert hashlib.md5(fs.cat("fsspec-bkt/dir/big.bin")).digest() == hashlib.md5(big).digest()
assert sorted(fs.ls("fsspec-bkt", detail=False)) == ["fsspec-bkt/dir", "fsspec-bkt/table.csv"], fs.ls("fsspec-bkt")
assert fs.info("fsspec-bkt/dir/big.bin")["size"] == len(big)
fs.copy("fsspec-bkt/table.csv", "fsspec-bkt/copy.csv")
assert fs.exists("fsspec-bkt/copy.csv")
assert len(fs.find("fsspec-bkt")) == 3
fs.rm("fsspec-bkt", recursive=True)
print("fsspec checks passed")
