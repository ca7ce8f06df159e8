"""What trikv does not implement yet: options it refuses (they would change what the member is: discovery,
proxy, force-new-cluster, TLS) and the one warning naming everything accepted and ignored.
"""

from __future__ import annotations

from typing import Any

from trikv.actors.config_keys import LEGACY_FLAGS, OPTS, PARSED_NOT_ACTED_ON, Kind
from trikv.actors.config_values import as_bool
from trikv.api.errors import ConfigError

_REFUSED_WHEN_SET = {
    # key -> why; these change what the member is, so ignoring them would start something else.
    "discovery": "discovery is not implemented in trikv: bootstrap with --initial-cluster",
    "discovery-srv": "DNS discovery is not implemented in trikv: bootstrap with --initial-cluster",
    "discovery-endpoints": "discovery is not implemented in trikv: bootstrap with --initial-cluster",
    "force-new-cluster": "--force-new-cluster is not implemented in trikv",
}
_TLS_FLAGS = {
    "client": ("cert-file", "key-file", "auto-tls", "client-transport-security"),
    "peer": ("peer-cert-file", "peer-key-file", "peer-auto-tls", "peer-transport-security"),
}


def is_set(key: str, value: Any, from_text: bool) -> bool:
    """Whether an unimplemented option asks for something (a non-empty string, a true boolean)."""
    if value is None:
        return False
    if OPTS[key].kind is Kind.BOOL:
        return as_bool(key, value, from_text)
    return bool(str(value).strip())


def check_unsupported(values: dict[str, Any], from_text: bool, warnings: list[str]) -> None:
    """Refuse what cannot be ignored safely; name everything else that is accepted and ignored, once."""
    for key, why in _REFUSED_WHEN_SET.items():
        if key in values and is_set(key, values[key], from_text):
            raise ConfigError(f"{why} ({spell(key, from_text)} is set)")
    proxy = values.get("proxy")
    if proxy is not None and str(proxy).strip() not in ("", "off"):
        raise ConfigError(
            f"proxy mode is not implemented in trikv ({spell('proxy', from_text)} is {proxy!r})"
        )
    ignored: list[str] = []
    for key in values:
        if key in LEGACY_FLAGS:
            warnings.append(f'flag "-{key}" is no longer supported - ignoring.')  # etcd's words
        elif not OPTS[key].implemented or key in PARSED_NOT_ACTED_ON:
            ignored.append(spell(key, from_text))
    if ignored:
        what = "flags / environment variables" if from_text else "config keys"
        warnings.append(f"{what} accepted and ignored (not implemented by trikv yet): {', '.join(ignored)}")


def spell(key: str, from_text: bool) -> str:
    return f"--{key}" if from_text else key


def check_tls(
    values: dict[str, Any],
    from_text: bool,
    listen: dict[str, tuple[str, ...]],
    advertised: dict[str, tuple[str, ...]],
) -> None:
    """Until trikv has TLS: never plaintext on an https URL, never a silently ignored certificate."""
    for side, (cert_key, key_key, auto_key, block_key) in _TLS_FLAGS.items():
        block = values.get(block_key) or {}
        auto = (auto_key in values and is_set(auto_key, values[auto_key], from_text)) or block.get(
            "auto-tls"
        ) is True
        if auto:
            where = f"--{auto_key}" if from_text else f"{block_key} auto-tls"
            raise ConfigError(
                f"{where} is not supported: trikv does not implement TLS yet (use http:// URLs)"
            )
        given = [f"--{k}" for k in (cert_key, key_key) if k in values and is_set(k, values[k], from_text)]
        given += [f"{block_key} {k}" for k in ("cert-file", "key-file") if block.get(k)]
        if given:
            raise ConfigError(
                f"TLS is not implemented in trikv yet: {', '.join(given)} cannot be used (remove it and use http:// URLs)"
            )
        for url in listen[side]:
            if url.startswith("https://"):
                flags = "--cert-file, --key-file" if side == "client" else "--peer-cert-file, --peer-key-file"
                raise ConfigError(
                    f"TLS key/cert ({flags}) must be provided for {side} url {url} with HTTPS scheme"
                )
    for key, urls in advertised.items():
        for url in urls:
            if url.startswith("https://"):
                raise ConfigError(
                    f"https URL {url} in {key}: trikv does not implement TLS yet (use http:// URLs)"
                )
