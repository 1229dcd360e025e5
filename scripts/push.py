#!/usr/bin/env python3
"""Push a local smalgos image to Amazon ECR (default) or to any registry.

    make push ALGO=linear-learner VARIANT=cpu [REGION=eu-west-1] [REGISTRY=host:port] [REPOSITORY=..]
    python scripts/push.py --image smalgos/linear-learner:1-cpu [--region R] [--registry HOST[:PORT]]
                           [--repository NAME] [--engine docker|podman] [--insecure] [--dry-run]

ECR (no --registry): with boto3's usual credentials and region, it creates the repository if
missing, gets a token (`get_authorization_token`), logs the engine in, tags and pushes, and prints
the image URI to use in place of AWS's, e.g.
`123456789012.dkr.ecr.eu-west-1.amazonaws.com/smalgos/linear-learner:1-cpu`.
boto3 honours `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_ECR`, so the ECR calls can be pointed at a
stand-in (moto's server); `--dry-run` then makes the API calls and prints the engine commands
instead of running them.

Other registries (--registry): tag and push only; `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` log in
first when set. Plain-HTTP registries on loopback (or any with --insecure) work with Docker (it
treats 127.0.0.0/8 as insecure), with podman (`--tls-verify=false`) and with the docker CLI on
podman's Docker API (the push goes through the API with `tlsVerify=false`).
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import os
import shlex
import subprocess
import sys


def log(msg: str) -> None:
    print(f"push: {msg}", file=sys.stderr, flush=True)


class Engine:
    def __init__(self, command: str, dry_run: bool):
        self.command = command
        self.dry_run = dry_run
        self._is_podman: bool | None = None

    @property
    def is_podman(self) -> bool:
        """Whether images live in podman (the podman CLI, or the docker CLI on podman's API)."""
        if self._is_podman is None:
            if os.path.basename(self.command) == "podman":
                self._is_podman = True
            else:
                out = subprocess.run([self.command, "version"], capture_output=True, text=True)
                self._is_podman = "podman" in (out.stdout + out.stderr).lower()
        return self._is_podman

    def run(self, *args: str, stdin: str | None = None, command: str | None = None,
            secret: bool = False) -> None:
        cmd = [command or self.command, *args]
        shown = " ".join(shlex.quote(a) for a in cmd)
        if self.dry_run:
            print(f"DRY-RUN: {shown}" + (" <<< (password)" if secret else ""))
            return
        log(shown)
        subprocess.run(cmd, input=stdin, text=True, check=True,
                       stdout=subprocess.DEVNULL if secret else None)

    def push(self, target: str, insecure: bool) -> None:
        if insecure and os.path.basename(self.command) == "podman":
            self.run("push", "--tls-verify=false", target)
        elif insecure and self.is_podman:
            # The docker CLI cannot ask podman's Docker API to skip TLS; the API itself can.
            if self.dry_run:
                print(f"DRY-RUN: POST /images/{target}/push?tlsVerify=false (podman's Docker API)")
            else:
                push_via_api(target)
        else:
            self.run("push", target)

    def login(self, registry: str, username: str, password: str, insecure: bool) -> None:
        extra = ["--tls-verify=false"] if insecure and os.path.basename(self.command) == "podman" else []
        self.run("login", *extra, "--username", username, "--password-stdin", registry,
                 stdin=password, secret=True)


def push_via_api(target: str) -> None:
    """POST /images/{name}/push?tlsVerify=false on the Docker API socket (podman honours it)."""
    import http.client
    import json
    import socket

    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        sys.exit(f"push: cannot push to an insecure registry through {host}; use ENGINE=podman")

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(host.removeprefix("unix://"))

    name, _, tag = target.rpartition(":")
    log(f"POST /images/{name}/push?tag={tag}&tlsVerify=false")
    conn = UnixConnection("localhost", timeout=3600)
    conn.request("POST", f"/images/{name}/push?tag={tag}&tlsVerify=false",
                 headers={"X-Registry-Auth": base64.b64encode(b"{}").decode()})
    resp = conn.getresponse()
    body = resp.read().decode(errors="replace")
    errors = [json.loads(line).get("error") for line in body.splitlines() if line.strip().startswith("{")]
    errors = [e for e in errors if e]
    if resp.status != 200 or errors:
        sys.exit(f"push: {resp.status} {errors or body[-1000:]}")


def is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ecr_registry(region: str | None, repository: str, dry_run: bool) -> tuple[str, str, str]:
    """Ensure the ECR repository exists; return (registry host, username, password)."""
    import boto3
    from botocore.exceptions import ClientError, NoRegionError

    session = boto3.session.Session(region_name=region) if region else boto3.session.Session()
    try:
        ecr = session.client("ecr")
    except NoRegionError:
        sys.exit("push: no AWS region: pass REGION=... (or set AWS_REGION / AWS_DEFAULT_REGION)")
    log(f"ECR region {ecr.meta.region_name}, endpoint {ecr.meta.endpoint_url}")
    try:
        ecr.describe_repositories(repositoryNames=[repository])
        log(f"repository {repository} exists")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "RepositoryNotFoundException":
            raise
        ecr.create_repository(repositoryName=repository,
                              imageScanningConfiguration={"scanOnPush": False})
        log(f"created repository {repository}")
    auth = ecr.get_authorization_token()["authorizationData"][0]
    username, password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
    registry = auth["proxyEndpoint"].removeprefix("https://").removeprefix("http://").rstrip("/")
    return registry, username, password


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", required=True, help="local image, e.g. smalgos/linear-learner:1-cpu")
    p.add_argument("--registry", help="host[:port] of a registry; default: Amazon ECR")
    p.add_argument("--region", help="AWS region for ECR (default: boto3's)")
    p.add_argument("--repository", help="repository name in the registry (default: the local one, "
                                         "e.g. smalgos/linear-learner)")
    p.add_argument("--engine", default=os.environ.get("ENGINE", "docker"))
    p.add_argument("--insecure", action="store_true", help="plain HTTP / unverified TLS registry")
    p.add_argument("--dry-run", action="store_true", default=bool(os.environ.get("DRY_RUN")),
                   help="make the registry API calls but only print the engine commands")
    args = p.parse_args(argv)

    name, _, tag = args.image.rpartition(":")
    if not name or "/" in tag:
        name, tag = args.image, "latest"
    repository = args.repository or name
    engine = Engine(args.engine, args.dry_run)
    if not args.dry_run:
        probe = subprocess.run([engine.command, "image", "inspect", args.image], capture_output=True)
        if probe.returncode != 0:
            sys.exit(f"push: no local image {args.image}: build it first (make build ...)")

    if args.registry:
        registry = args.registry.rstrip("/")
        insecure = args.insecure or is_loopback(registry)
        user, password = os.environ.get("REGISTRY_USERNAME"), os.environ.get("REGISTRY_PASSWORD")
        if user and password:
            engine.login(registry, user, password, insecure)
    else:
        registry, user, password = ecr_registry(args.region, repository, args.dry_run)
        insecure = args.insecure
        engine.login(registry, user, password, insecure)

    target = f"{registry}/{repository}:{tag}"
    engine.run("tag", args.image, target)
    engine.push(target, insecure)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
