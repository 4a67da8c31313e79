#!/usr/bin/env python3
"""Trims etcd's api/etcdserverpb/rpc.proto to the RPCs credvault calls, and the messages they
use, without the grpc-gateway, openapi and versionpb annotations, so protox compiles it with no
other import than mvccpb/kv.proto.

Usage (from a checkout of github.com/etcd-io/etcd):
  python3 trim.py api/etcdserverpb/rpc.proto > proto/etcd/api/etcdserverpb/rpc.proto
"""
import re
import sys

KEEP = {
    "KV": ["Range", "Put", "DeleteRange", "Txn"],
    "Watch": ["Watch"],
    "Lease": ["LeaseGrant", "LeaseRevoke", "LeaseKeepAlive"],
    "Auth": ["Authenticate"],
}


def blocks(text):
    """Top-level (kind, name, text) blocks: service, message, enum."""
    out, i = [], 0
    for m in re.finditer(r"^(service|message|enum)\s+(\w+)\s*\{", text, re.M):
        if m.start() < i:
            continue
        depth, j = 0, m.end() - 1
        while True:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
            if depth == 0:
                break
        # Keep the comment lines right above the block.
        start = m.start()
        while True:
            prev = text.rfind("\n", 0, start - 1)
            line = text[prev + 1 : start - 1]
            if line.strip().startswith("//"):
                start = prev + 1
            else:
                break
        out.append((m.group(1), m.group(2), text[start:j]))
        i = j
    return out


def clean(block):
    block = re.sub(r"\s*\[\((?:versionpb|gogoproto)\.[^\]]*\]", "", block)
    block = re.sub(r"^\s*option \((?:versionpb|gogoproto)\.[^;]*;\n", "", block, flags=re.M)
    return block


def main(path):
    text = open(path).read()
    found = blocks(text)
    types = {name: clean(b) for kind, name, b in found if kind != "service"}
    services, needed = [], []
    for kind, name, b in found:
        if kind != "service" or name not in KEEP:
            continue
        rpcs = []
        for rpc in KEEP[name]:
            m = re.search(
                r"((?:^\s*//[^\n]*\n)*)^\s*rpc %s\((stream )?(\w+)\) returns \((stream )?(\w+)\)" % rpc,
                b,
                re.M,
            )
            comment, s1, req, s2, resp = m.groups()
            rpcs.append(f"{comment}  rpc {rpc}({s1 or ''}{req}) returns ({s2 or ''}{resp});\n")
            needed += [req, resp]
        services.append(f"service {name} {{\n" + "\n".join(rpcs) + "}\n")
    keep, queue = set(), list(needed)
    while queue:
        t = queue.pop()
        if t in keep or t not in types:
            continue
        keep.add(t)
        queue += re.findall(r"\b(\w+)\b", types[t])
    print('// Trimmed from etcd\'s api/etcdserverpb/rpc.proto by trim.py: the RPCs credvault calls\n'
          '// and the messages they use. Copyright The etcd Authors, Apache License 2.0 (LICENSE).\n'
          'syntax = "proto3";\npackage etcdserverpb;\n\nimport "etcd/api/mvccpb/kv.proto";\n')
    print("\n".join(services))
    for kind, name, b in found:
        if name in keep:
            print(types[name] + "\n")


main(sys.argv[1])
