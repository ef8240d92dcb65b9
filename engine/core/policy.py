"""What a playground server may reach and how much a run may ask for: the operator decides, not the browser.

With no configuration the playground is one person's, on their own machine: any folder, the
addresses they type, generous limits. An operator who shares a server writes one TOML file
(`PLAYGROUND_CONFIG`, else `.streamlit/playground.toml`) with a `[playground]` table; from then on
a browser reaches only the clusters named there, reads only under the data roots listed there,
and each run stays within the limits. Every setting has a `PLAYGROUND_*` environment variable too.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field

from engine.core.config import BUILTIN_DATA, URI_SCHEMES, RunConfig

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_FILE = os.path.join(PROJECT_ROOT, ".streamlit", "playground.toml")
LOCAL = "local"  # the cluster name of the embedded local Ray
SIGN_INS = ("none", "passcode", "oidc")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
INPUT_BYTES_PER_PIXEL = 3 * 4  # a batch on its way into the model: three channels of float32


class PolicyError(ValueError):
    """A setting this server's operator does not allow; the message is one line."""


@dataclass(frozen=True)
class Policy:
    shared: bool = False  # an operator configured this server for a team
    clusters: dict[str, str | None] = field(default_factory=lambda: {LOCAL: None})  # name -> address
    any_address: bool = True  # a browser may type any Ray address
    data_roots: tuple[str, ...] = ()  # folders a run may read (resolved); empty and not shared: any
    uri_schemes: tuple[str, ...] = ()  # remote schemes a run may read ("s3", "gs", ...); not shared: any
    max_images: int = 10_000_000
    max_batch_mb: float | None = None  # batch x image size x image size x 12 bytes, the input batch in float32
    max_queued_per_person: int = 50
    max_queued: int = 50
    sign_in: str = "none"
    passcode: str | None = None
    operators: tuple[str, ...] = ()
    allow_public_without_sign_in: bool = False

    def is_operator(self, who: str | None) -> bool:
        """Operators act on every run; on a one-user playground that is its one user."""
        return not self.shared or (who is not None and who in self.operators)


def load(env: dict[str, str] | None = None) -> Policy:
    """The operator's policy from PLAYGROUND_CONFIG (or .streamlit/playground.toml) and PLAYGROUND_* variables."""
    env = dict(os.environ if env is None else env)
    path = env.get("PLAYGROUND_CONFIG") or (DEFAULT_FILE if os.path.exists(DEFAULT_FILE) else None)
    table: dict = {}
    if path:
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f).get("playground", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PolicyError(f"the operator's configuration {path} cannot be read: {exc}") from None
    table.update(_from_env(env))
    shared = bool(path) or bool(table)
    if not shared:
        return Policy()
    return _policy(table)


def _from_env(env: dict[str, str]) -> dict:
    """PLAYGROUND_CLUSTERS="gpu=head:6379,cpu=10.0.0.2:6379", PLAYGROUND_DATA_ROOTS="/data:/mnt/images", ..."""
    found: dict = {}
    if "PLAYGROUND_CLUSTERS" in env:
        pairs = [p.split("=", 1) for p in env["PLAYGROUND_CLUSTERS"].split(",") if "=" in p]
        found["clusters"] = {name.strip(): address.strip() for name, address in pairs}
    if "PLAYGROUND_DATA_ROOTS" in env:
        found["data_roots"] = [p for p in env["PLAYGROUND_DATA_ROOTS"].split(os.pathsep) if p]
    for name, kind in (("max_images", int), ("max_batch_mb", float), ("max_queued_per_person", int),
                       ("max_queued", int)):  # fmt: skip
        if f"PLAYGROUND_{name.upper()}" in env:
            found[name] = kind(env[f"PLAYGROUND_{name.upper()}"])
    if "PLAYGROUND_PASSCODE" in env:
        found["passcode"] = env["PLAYGROUND_PASSCODE"]
        found.setdefault("sign_in", "passcode")
    if env.get("PLAYGROUND_ALLOW_ANY_ADDRESS") == "1":
        found["any_address"] = True
    return found


def _policy(table: dict) -> Policy:
    """A shared server's policy: what the table sets, and cautious values for what it leaves out."""
    clusters = {LOCAL: None, **{str(k): str(v) for k, v in table.get("clusters", {}).items()}}
    sign_in = table.get("sign_in", "passcode" if table.get("passcode") else "none")
    if sign_in not in SIGN_INS:
        raise PolicyError(f"sign_in must be one of {', '.join(SIGN_INS)} (got {sign_in!r})")
    if sign_in == "passcode" and not table.get("passcode"):
        raise PolicyError("sign_in = 'passcode' needs a passcode (or PLAYGROUND_PASSCODE)")
    return Policy(
        shared=True,
        clusters=clusters,
        any_address=bool(table.get("any_address", False)),
        data_roots=tuple(os.path.realpath(os.path.expanduser(r)) for r in table.get("data_roots", [])),
        uri_schemes=tuple(s.removesuffix("://") for s in table.get("uri_schemes", [])),
        max_images=int(table.get("max_images", 200_000)),
        max_batch_mb=float(table.get("max_batch_mb", 4096)),
        max_queued_per_person=int(table.get("max_queued_per_person", 2)),
        max_queued=int(table.get("max_queued", 10)),
        sign_in=sign_in,
        passcode=table.get("passcode"),
        operators=tuple(table.get("operators", [])),
        allow_public_without_sign_in=bool(table.get("allow_public_without_sign_in", False)),
    )


def serving_refusal(policy: Policy, address: str | None) -> str | None:
    """Why a server must not serve at `address`, or None: beyond this machine, someone must sign in."""
    if (address or "127.0.0.1") in LOOPBACK or policy.sign_in != "none" or policy.allow_public_without_sign_in:
        return None
    return (
        f"refusing to serve on {address} without sign-in: set a passcode or OIDC sign-in in the operator's "
        "configuration, or allow_public_without_sign_in = true"
    )


def resolve_address(policy: Policy, typed: str | None) -> str | None:
    """The Ray address a browser's entry stands for (a cluster name, or an address where allowed); None is local."""
    typed = (typed or "").strip()
    if not typed or typed == LOCAL:
        return None
    if typed in policy.clusters:
        return policy.clusters[typed]
    if policy.any_address or typed in policy.clusters.values():
        return typed
    names = ", ".join(policy.clusters)
    raise PolicyError(f"Ray address {typed!r} is not one of this server's clusters ({names}); ask its operator")


def check_run(policy: Policy, config: RunConfig) -> None:
    """Refuse, in one line, a run this server's operator does not allow; nothing starts."""
    check_data(policy, config.data)
    if config.images > policy.max_images:
        raise PolicyError(f"images {config.images:,} is more than this server allows ({policy.max_images:,})")
    batch_mb = config.batch_size * config.image_size**2 * INPUT_BYTES_PER_PIXEL / 2**20
    if policy.max_batch_mb is not None and batch_mb > policy.max_batch_mb:
        raise PolicyError(
            f"batch {config.batch_size} at {config.image_size} px is about {batch_mb:,.0f} MB of input, more than "
            f"this server allows ({policy.max_batch_mb:,.0f} MB): lower the batch size or the image size"
        )


def check_data(policy: Policy, data: str) -> None:
    """A folder must lie under a data root (links resolved), a URI must use an allowed scheme."""
    if data in BUILTIN_DATA or not policy.shared:
        return
    if data.startswith(URI_SCHEMES) or "://" in data:
        scheme = data.split("://", 1)[0]
        if scheme not in policy.uri_schemes:
            allowed = ", ".join(policy.uri_schemes) or "none"
            raise PolicyError(f"data: {scheme}:// is not allowed on this server (allowed: {allowed})")
        return
    path = os.path.realpath(os.path.expanduser(data))
    if not any(os.path.commonpath([path, root]) == root for root in policy.data_roots):
        roots = ", ".join(policy.data_roots) or "none"
        raise PolicyError(f"data: {path} is outside this server's data folders ({roots})")


def check_queue(policy: Policy, who: str | None, waiting: list) -> None:
    """A person may have a few runs waiting, and the server a few in all (`waiting`: runs with an `owner`)."""
    if len(waiting) >= policy.max_queued:
        raise PolicyError(f"{len(waiting)} runs are already waiting, this server's limit: try again when one ends")
    mine = [r for r in waiting if r.owner == who]
    if len(mine) >= policy.max_queued_per_person:
        raise PolicyError(
            f"you already have {len(mine)} run(s) waiting, this server's limit per person: cancel one or wait"
        )
