#!/usr/bin/env python3
"""Shared body template for the intake benchmark, and the signature precomputation.

wrk's Lua has no HMAC, so this writes one `sha256=<hex>` line per body index; intake.lua builds
the byte-identical body from the same template and sends it with the matching signature.
Usage: payload.py COUNT SECRET > signatures.txt
"""
import hashlib
import hmac
import sys

# Keep in sync with TEMPLATE in intake.lua (a pull_request "synchronize" delivery, ~1.6 KB).
TEMPLATE = (
    '{"action":"synchronize","number":%d,"before":"0000000000000000000000000000000000000000",'
    '"after":"%s","pull_request":{"url":"https://api.github.com/repos/acme/gitops/pulls/%d",'
    '"id":%d,"number":%d,"state":"open","locked":false,"title":"Bump web image in staging",'
    '"user":{"login":"alice","id":1001,"type":"User"},"body":"Rolls the new web image to '
    'staging. Capstan benchmark payload; the fields mirror a real synchronize delivery.",'
    '"created_at":"2026-11-20T09:12:00Z","updated_at":"2026-11-20T10:40:11Z","draft":false,'
    '"head":{"label":"acme:bench","ref":"bench-%d","sha":"%s","user":{"login":"acme","id":2002,'
    '"type":"Organization"},"repo":{"id":3003,"name":"gitops","full_name":"acme/gitops"}},'
    '"base":{"label":"acme:main","ref":"main","sha":"0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",'
    '"user":{"login":"acme","id":2002,"type":"Organization"},"repo":{"id":3003,"name":"gitops",'
    '"full_name":"acme/gitops"}},"merged":false,"mergeable":null,"comments":0,"commits":1,'
    '"additions":1,"deletions":1,"changed_files":1},"repository":{"id":3003,"name":"gitops",'
    '"full_name":"acme/gitops","private":true,"owner":{"login":"acme","id":2002,'
    '"type":"Organization"},"default_branch":"main"},"organization":{"login":"acme","id":2002},'
    '"sender":{"login":"alice","id":1001,"type":"User"},"installation":{"id":55501}}'
)


def body(n: int) -> bytes:
    sha = "%040d" % n
    return (TEMPLATE % (n, sha, n, n, n, n, sha)).encode()


def main() -> None:
    count, secret = int(sys.argv[1]), sys.argv[2].encode()
    out = sys.stdout
    for n in range(1, count + 1):
        out.write("sha256=" + hmac.new(secret, body(n), hashlib.sha256).hexdigest() + "\n")


if __name__ == "__main__":
    main()
