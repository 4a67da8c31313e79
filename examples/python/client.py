#!/usr/bin/env python3
"""A Python client of credvault: Add, Validate, Resolve, List and Delete, printed as it goes
(never a secret).

The client code is generated at run time from the repository's proto/ with grpcio-tools, so it
always matches the contract it runs against:

    pip install -r examples/python/requirements.txt
    python3 examples/python/client.py

CREDVAULT_ADDR (default 127.0.0.1:50051) and CREDVAULT_TOKEN_FILE (default
credvault-data/admin.token, the bootstrap token of a first start) say where and as whom.
Validate sends a test SMS, so point the server at a Twilio mock first (README, "Try Validate on
your machine"): the credential below is made of the SIDs of Twilio's spec examples, which the
Prism mock accepts. CI runs this against such a server (.ci/suites/60-clients.sh).
"""

import importlib
import os
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

OWNER = "example-python"
LABEL = "prod-sender"
PROTO = pathlib.Path(__file__).resolve().parents[2] / "proto"


def generate(out: pathlib.Path):
    """credvault/v1/credvault_pb2{,_grpc}.py from proto/, importable from `out`."""
    include = pathlib.Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
    args = [
        "protoc",
        f"-I{PROTO}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(PROTO / "credvault/v1/credvault.proto"),
    ]
    if protoc.main(args) != 0:
        sys.exit("generating the client from proto/ failed")
    sys.path.insert(0, str(out))
    pb = importlib.import_module("credvault.v1.credvault_pb2")
    rpc = importlib.import_module("credvault.v1.credvault_pb2_grpc")
    return pb, rpc


def main():
    addr = os.environ.get("CREDVAULT_ADDR", "127.0.0.1:50051").removeprefix("http://")
    token_file = os.environ.get("CREDVAULT_TOKEN_FILE", "credvault-data/admin.token")
    token = pathlib.Path(token_file).read_text().strip()
    auth = [("authorization", f"Bearer {token}")]

    with tempfile.TemporaryDirectory() as out:
        pb, rpc = generate(pathlib.Path(out))
        with grpc.insecure_channel(addr) as channel:
            vault = rpc.CredentialVaultStub(channel)
            print(f"connected to {addr}")

            added = vault.Add(
                pb.AddRequest(
                    owner=OWNER,
                    label=LABEL,
                    replace=True,
                    credential=pb.TwilioCredential(
                        account_sid="ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                        auth_token=pb.AuthToken(auth_token="0123456789abcdef0123456789abcdef"),
                        messaging_service_sid="MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                    ),
                ),
                metadata=auth,
            ).credential
            print(f"added {OWNER}/{LABEL}: version {added.version}, secret hint ...{added.secret_hint}")

            result = vault.Validate(
                pb.ValidateRequest(owner=OWNER, label=LABEL, test_recipient="+6591234567"),
                metadata=auth,
            ).result
            step = pb.ValidationStep.Name(result.step)
            print(f"validated: valid={result.valid} step={step} reason={result.reason!r}")
            if not result.valid:
                sys.exit("Twilio (the mock) rejected the credential")

            resolved = vault.Resolve(
                pb.ResolveRequest(owner=OWNER, label=LABEL, require_valid=True), metadata=auth
            )
            # What a sender hands its Twilio client; the password is the secret: used, never printed.
            print(
                f"resolved: username {resolved.username} "
                f"(password: {len(resolved.password)} characters), api base {resolved.api_base_url}"
            )

            listed = vault.List(pb.ListRequest(owner=OWNER), metadata=auth)
            for m in listed.credentials:
                state = pb.ValidationState.Name(m.validation.state)
                print(f"listed: {m.label} (version {m.version}, {state})")

            deleted = vault.Delete(pb.DeleteRequest(owner=OWNER, label=LABEL), metadata=auth)
            print(f"deleted {OWNER}/{LABEL} (version {deleted.version})")


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as e:
        sys.exit(f"error: {e.code().name}: {e.details()}")
