"""DirEng API tokens, in process: keys, minting, verification (every way a token can be wrong),
scopes, rotation, the CLI. Every test uses its own keys directory (`DIRENG_KEYS_DIR`)."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from direng_kernel.errors import DirEngError
from direng_kernel.security import keys as keys_mod
from direng_kernel.security.keys import (LEEWAY_S, MAX_TTL_S, KeyStore, get_keystore, jwks, rotate_keys,
                                         thumbprint)
from direng_kernel.security.scopes import (ALL_SCOPES, HUB_CUSTOM_SCOPE_RE, KERNEL_SCOPES, LANE_SCOPES, SCOPES,
                                           UnknownScopeError, expand_presets, from_hub_scope, hub_custom_scopes,
                                           hub_scope, parse_scopes)
from direng_kernel.security.tokens import (InsufficientScope, InvalidToken, TokenError, decode_unverified,
                                           looks_like_jwt, mint, mint_kernel_token, mint_lane_token, verify)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def keys_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "keys"
    monkeypatch.setenv("DIRENG_KEYS_DIR", str(path))
    return path


def b64u(data: bytes | dict) -> str:
    if isinstance(data, dict):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def valid_payload(**over) -> dict:
    now = int(time.time())
    return {"iss": "direng-workbench", "sub": "alice", "aud": "direng", "iat": now, "nbf": now, "exp": now + 600,
            "jti": "j1", "scope": "index:read", **over}


def sign_with_our_key(payload: dict, **headers) -> str:
    """A token signed with the real active key (to build well-signed but otherwise bad tokens)."""
    signing = get_keystore().signing_key()
    return jwt.encode(payload, signing.private_key, algorithm="RS256", headers={"kid": signing.kid, **headers})


def reason(token: str, **kw) -> str:
    with pytest.raises(InvalidToken) as info:
        verify(token, **kw)
    assert str(info.value).startswith("invalid token: ") and "\n" not in str(info.value)
    assert isinstance(info.value, DirEngError)
    return info.value.reason


# -- keys ------------------------------------------------------------------------------------------

def test_first_use_generates_a_key_pair_with_private_mode_0600(keys_dir):
    assert not keys_dir.exists()
    token = mint("alice", ["index:read"])
    kid = jwt.get_unverified_header(token)["kid"]
    private = keys_dir / f"{kid}.key.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (keys_dir / f"{kid}.pub.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    key = get_keystore().signing_key().private_key
    assert key.key_size >= 2048
    assert kid == thumbprint(key.public_key())


def test_kid_is_the_rfc7638_thumbprint():
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    # RFC 7638 section 3.1's example key and thumbprint
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
         "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZ"
         "Hzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kE"
         "gU8awapJzKnqDKgw")
    public = RSAPublicNumbers(65537, int.from_bytes(unb64u(n), "big")).public_key()
    assert thumbprint(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_jwks_lists_the_public_key_that_verifies_tokens():
    token = mint("alice", ["index:read"])
    doc = jwks()
    assert len(doc["keys"]) == 1
    jwk = doc["keys"][0]
    assert {"kty", "n", "e", "kid", "alg", "use"} <= set(jwk) and "d" not in jwk and "p" not in jwk
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["e"]) == ("RSA", "RS256", "sig", "AQAB")
    assert jwk["kid"] == jwt.get_unverified_header(token)["kid"]
    public = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
    assert jwt.decode(token, public, algorithms=["RS256"], audience="direng")["sub"] == "alice"


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(keys_dir):
    old_token = mint("alice", ["index:read"])
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    new_kid = rotate_keys()
    assert new_kid != old_kid
    new_token = mint("alice", ["index:read"])
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert verify(old_token).kid == old_kid and verify(new_token).kid == new_kid
    assert {k["kid"] for k in jwks()["keys"]} == {old_kid, new_kid}
    assert not (keys_dir / f"{old_kid}.key.pem").exists()  # no signing with a retired key, ever
    assert (keys_dir / f"{old_kid}.pub.pem").exists() and (keys_dir / f"{new_kid}.key.pem").exists()
    info = get_keystore().key_info(old_kid)
    assert info.retired is not None and info.valid_until == pytest.approx(info.retired + MAX_TTL_S + LEEWAY_S)


def test_retired_keys_are_pruned_after_the_longest_token_lifetime(keys_dir):
    old_token = mint("alice", ["index:read"])
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    rotate_keys()
    clock = [time.time() + MAX_TTL_S - 3600]
    store = KeyStore(keys_dir, clock=lambda: clock[0])
    assert store.prune() == [] and store.public_key(old_kid) is not None
    clock[0] = time.time() + MAX_TTL_S + LEEWAY_S + 1
    assert store.public_key(old_kid) is None  # expired entries are invalid even before pruning
    assert store.prune() == [old_kid]
    assert not (keys_dir / f"{old_kid}.pub.pem").exists()
    assert [k["kid"] for k in jwks()["keys"]] == [store.active_kid]
    assert "unknown key id" in reason(old_token)  # the process-wide store re-reads the manifest


def test_another_process_rotating_is_seen_without_restart(keys_dir):
    first = mint("alice", ["index:read"])
    code = ("import sys; from direng_kernel.security.keys import rotate_keys; "
            "from direng_kernel.security.tokens import mint; rotate_keys(); print(mint('alice', ['tasks:read']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "DIRENG_KEYS_DIR": str(keys_dir)}).stdout.strip().splitlines()[-1]
    assert verify(out, "tasks:read").kid != verify(first).kid
    assert jwt.get_unverified_header(mint("alice", ["index:read"]))["kid"] == verify(out).kid


def test_concurrent_first_use_makes_one_key(keys_dir):
    code = "from direng_kernel.security.tokens import mint; print(mint('alice', ['index:read']))"
    env = {**os.environ, "DIRENG_KEYS_DIR": str(keys_dir)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
             for _ in range(4)]
    tokens = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len({jwt.get_unverified_header(t)["kid"] for t in tokens}) == 1
    assert all(verify(t).subject == "alice" for t in tokens)
    assert len(json.loads((keys_dir / "keys.json").read_text())["keys"]) == 1


# -- mint and verify ---------------------------------------------------------------------------------

def test_mint_and_verify_round_trip():
    token = mint("alice", ["index:read", "tasks:read", "index:read"], ttl_s=600, extra={"lane": "narrative"})
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"] == get_keystore().active_kid
    claims = verify(token, required_scope="tasks:read", user="alice")
    assert claims.subject == "alice" and claims.scopes == ("index:read", "tasks:read")
    assert claims.issuer == "direng-workbench" and claims.audience == "direng"
    assert claims.expires_at - claims.issued_at == 600 and claims.not_before == claims.issued_at
    assert claims.jti and claims.raw["lane"] == "narrative" and claims.raw["scope"] == "index:read tasks:read"
    assert claims.has_scope("index:read") and not claims.has_scope("runs:execute")
    assert verify(" " + token + "\n").jti == claims.jti  # surrounding whitespace is not part of it
    assert mint("alice", ["index:read"]) != mint("alice", ["index:read"])  # unique jti


def test_mint_rejects_bad_input():
    with pytest.raises(UnknownScopeError, match="unknown scope 'index:admin'"):
        mint("alice", ["index:admin"])
    for bad_ttl in (0, -5, MAX_TTL_S + 1, 1.5, True):
        with pytest.raises(TokenError, match="ttl"):
            mint("alice", ["index:read"], ttl_s=bad_ttl)
    with pytest.raises(TokenError, match="subject"):
        mint("  ", ["index:read"])
    with pytest.raises(TokenError, match="reserved"):
        mint("alice", ["index:read"], extra={"scope": "policy:admin"})


def test_expired():
    token = mint("alice", ["index:read"], ttl_s=600, now=time.time() - 600 - LEEWAY_S - 5)
    assert reason(token) == "expired"
    within_leeway = mint("alice", ["index:read"], ttl_s=600, now=time.time() - 600 - LEEWAY_S + 10)
    assert verify(within_leeway).subject == "alice"


def test_not_yet_valid():
    token = mint("alice", ["index:read"], now=time.time() + LEEWAY_S + 60)
    assert reason(token).startswith("not yet valid")
    token = sign_with_our_key(valid_payload(nbf=int(time.time()) + 120))
    assert reason(token).startswith("not yet valid")
    assert verify(mint("alice", ["index:read"], now=time.time() + LEEWAY_S - 10)).subject == "alice"


def test_wrong_issuer_and_audience():
    assert reason(mint("alice", ["index:read"], issuer="someone-else")).startswith("wrong issuer")
    assert reason(mint("alice", ["index:read"], audience="other-api")).startswith("wrong audience")
    assert reason(mint("alice", ["index:read"]), audience="other-api").startswith("wrong audience")


def test_missing_claims():
    for name in ("exp", "nbf", "iat", "jti", "sub", "scope", "iss", "aud"):
        payload = valid_payload()
        del payload[name]
        assert name in reason(sign_with_our_key(payload)), name
    assert "'scope' must be" in reason(sign_with_our_key(valid_payload(scope=["index:read"])))


def test_lifetime_longer_than_the_maximum_is_rejected():
    now = int(time.time())
    assert "lifetime" in reason(sign_with_our_key(valid_payload(iat=now, nbf=now, exp=now + MAX_TTL_S + 3600)))


def test_unknown_kid():
    from cryptography.hazmat.primitives.asymmetric import rsa

    mint("alice", ["index:read"])  # this server has a key
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = thumbprint(foreign.public_key())
    token = jwt.encode(valid_payload(), foreign, algorithm="RS256", headers={"kid": kid})
    assert reason(token).startswith("unknown key id")
    no_kid = jwt.encode(valid_payload(), foreign, algorithm="RS256")
    assert "kid" in reason(no_kid)
    _, payload, sig = token.split(".")
    for bad in ("../keys", "x" * 500, "", 7, None, ["a"]):
        head = b64u({"alg": "RS256", "typ": "JWT", "kid": bad})
        assert "key id" in reason(f"{head}.{payload}.{sig}"), bad
    # a foreign key that claims our kid: the signature does not verify
    ours = get_keystore().active_kid
    assert reason(jwt.encode(valid_payload(), foreign, algorithm="RS256", headers={"kid": ours})) == "bad signature"


def test_tampered_signature():
    token = mint("alice", ["index:read"])
    head, payload, sig = token.split(".")
    for i in (0, len(sig) // 2, len(sig) - 1):
        flipped = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]
        assert reason(f"{head}.{payload}.{flipped}") == "bad signature"
    with pytest.raises(InvalidToken):
        verify(f"{head}.{payload}.")  # signature stripped
    with pytest.raises(InvalidToken):
        verify(f"{head}.{payload}.{sig[:-4]}")


def test_tampered_payload():
    token = mint("alice", ["index:read"])
    head, payload, sig = token.split(".")
    claims = json.loads(unb64u(payload))
    for change in ({"scope": "index:read policy:admin"}, {"sub": "root"}, {"exp": claims["exp"] + 86400}):
        assert reason(f"{head}.{b64u(claims | change)}.{sig}") == "bad signature"
    header = json.loads(unb64u(head))
    assert reason(f"{b64u(header | {'typ': 'at+jwt'})}.{payload}.{sig}") == "bad signature"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_rejected(alg):
    mint("alice", ["index:read"])
    kid = get_keystore().active_kid
    token = f"{b64u({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{b64u(valid_payload(scope='policy:admin'))}."
    assert reason(token) == f"algorithm {alg!r} is not accepted (only RS256)"
    with pytest.raises(InvalidToken):  # with a signature part as well
        verify(token + b64u(b"x" * 32))


def test_hs256_signed_with_the_public_key_is_rejected():
    """Algorithm confusion: an attacker HMACs a token with the (public) PEM as the secret."""
    mint("alice", ["index:read"])
    kid = get_keystore().active_kid
    public_pem = get_keystore().public_path(kid).read_bytes()
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
        signing_input = f"{b64u({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{b64u(valid_payload(scope='policy:admin'))}"
        sig = hmac.new(public_pem, signing_input.encode(), digest).digest()
        token = f"{signing_input}.{b64u(sig)}"
        # the forgery is good: a naive verifier that runs the header's alg with the published key as
        # the secret (PyJWT's own HMAC, bypassing its key checks) accepts it, and rejects a tampered one
        naive = jwt.algorithms.HMACAlgorithm(getattr(jwt.algorithms.HMACAlgorithm, f"SHA{alg[2:]}"))
        forged_head, forged_payload, forged_sig = token.split(".")
        assert naive.verify(f"{forged_head}.{forged_payload}".encode(), public_pem, unb64u(forged_sig))
        assert not naive.verify(f"{forged_head}.{b64u(valid_payload(scope='index:read'))}".encode(), public_pem,
                                unb64u(forged_sig))
        assert reason(token) == f"algorithm {alg!r} is not accepted (only RS256)"
    # other asymmetric algorithms are refused as well
    token = mint("alice", ["index:read"])
    head, payload, sig = token.split(".")
    ps = b64u(json.loads(unb64u(head)) | {"alg": "PS256"})
    assert "not accepted" in reason(f"{ps}.{payload}.{sig}")


def test_missing_scope_is_insufficient_scope_not_invalid():
    token = mint("alice", list(LANE_SCOPES))
    with pytest.raises(InsufficientScope) as info:
        verify(token, required_scope="runs:execute")
    assert not isinstance(info.value, InvalidToken)
    assert info.value.scope == "runs:execute" and str(info.value) == "missing scope 'runs:execute'"
    assert verify(token, required_scope="tasks:read").subject == "alice"
    with pytest.raises(InsufficientScope):
        verify(token).require("policy:admin")
    with pytest.raises(UnknownScopeError):
        verify(token, required_scope="everything")
    # unknown scopes in a token (a newer issuer) grant nothing here but do not invalidate it
    odd = sign_with_our_key(valid_payload(scope="index:read future:thing"))
    assert verify(odd).scopes == ("index:read",)


def test_token_for_another_user():
    token = mint("bob", ["index:read"])
    assert reason(token, user="alice") == "the token is for user 'bob', not 'alice'"
    assert verify(token, user="bob").subject == "bob"
    # an invalid token stays invalid (401) even when the scope is missing too (403)
    with pytest.raises(InvalidToken):
        verify(token, required_scope="policy:admin", user="alice")


def test_kernel_and_lane_tokens():
    kernel = verify(mint_kernel_token("alice"))
    assert kernel.scopes == KERNEL_SCOPES and kernel.expires_at - kernel.issued_at == 12 * 3600
    assert kernel.raw["token_use"] == "kernel"
    lane = verify(mint_lane_token("alice"))
    assert lane.scopes == LANE_SCOPES
    for scope in ("runs:execute", "policy:admin", "tasks:write", "secrets:use"):
        assert not lane.has_scope(scope)


def test_looks_like_jwt_and_decode_unverified():
    token = mint("alice", ["index:read"])
    assert looks_like_jwt(token)
    for not_jwt in ("6a9f90ca2fe8f188c4e3a4a8def7989b", "a.b.c", "", None, "x.y", token + ".more", "a b.c d.e"):
        assert not looks_like_jwt(not_jwt)
    header, claims = decode_unverified(token)
    assert header["kid"] and claims["sub"] == "alice"
    assert decode_unverified("garbage") == (None, None)


# -- property tests: garbage never crashes verify ---------------------------------------------------

@pytest.fixture(scope="module")
def shared_keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("shared-keys")
    token = mint("alice", ["index:read", "tasks:read"], keys_dir=path)
    return path, token


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=12)


def _must_be_invalid(token, keys_dir) -> None:
    with pytest.raises(InvalidToken) as info:
        verify(token, keys_dir=keys_dir)
    assert info.value.reason and "\n" not in str(info.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_random_strings_are_invalid_tokens(shared_keys, value):
    _must_be_invalid(value, shared_keys[0])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.dictionaries(st.text(max_size=8), json_values, max_size=4), payload=json_values,
       sig=st.binary(max_size=400), alg=st.sampled_from(["RS256", "none", "HS256", None]), real_kid=st.booleans())
def test_random_jwt_shaped_tokens_are_invalid(shared_keys, header, payload, sig, alg, real_kid):
    keys_dir, good = shared_keys
    if alg is not None:
        header["alg"] = alg
    if real_kid:
        header["kid"] = jwt.get_unverified_header(good)["kid"]
    token = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(payload).encode())}.{b64u(sig)}"
    _must_be_invalid(token, keys_dir)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_garbled_valid_tokens_are_invalid(shared_keys, data):
    keys_dir, good = shared_keys
    assert verify(good, keys_dir=keys_dir).subject == "alice"
    i = data.draw(st.integers(0, len(good) - 1))
    kind = data.draw(st.sampled_from(["replace", "delete", "insert", "swap-segments", "truncate"]))
    char = data.draw(st.characters(codec="ascii") | st.sampled_from(list("AB_-.=")))
    if kind == "replace":
        garbled = good[:i] + char + good[i + 1:]
    elif kind == "delete":
        garbled = good[:i] + good[i + 1:]
    elif kind == "insert":
        garbled = good[:i] + char + good[i:]
    elif kind == "truncate":
        garbled = good[:i]
    else:
        h, p, s = good.split(".")
        garbled = f"{p}.{h}.{s}"
    if garbled.strip() == good:
        return  # a no-op edit (same char, or whitespace the verifier strips)
    _must_be_invalid(garbled, keys_dir)


# -- scopes ------------------------------------------------------------------------------------------

def test_eight_scopes_with_descriptions():
    assert ALL_SCOPES == ("index:read", "index:write", "tasks:read", "tasks:write", "runs:execute", "runs:replay",
                          "policy:admin", "secrets:use")
    assert all(isinstance(d, str) and d and "\n" not in d for d in SCOPES.values())


def test_least_privilege_presets():
    assert KERNEL_SCOPES == ("index:read", "index:write", "tasks:read", "tasks:write", "runs:execute")
    assert LANE_SCOPES == ("index:read", "tasks:read")
    assert set(LANE_SCOPES) < set(KERNEL_SCOPES)
    assert not {"policy:admin", "secrets:use", "runs:replay"} & set(KERNEL_SCOPES)
    assert expand_presets(["lane", "runs:replay"]) == ("index:read", "tasks:read", "runs:replay")
    assert expand_presets(["all"]) == ALL_SCOPES


def test_parse_scopes():
    assert parse_scopes("index:read  tasks:read,index:read") == ("index:read", "tasks:read")
    assert parse_scopes(["index:read", "runs:execute tasks:write"]) == ("index:read", "runs:execute", "tasks:write")
    assert parse_scopes(None) == () and parse_scopes("") == ()
    with pytest.raises(UnknownScopeError) as info:
        parse_scopes("index:read index:delete")
    assert info.value.scope == "index:delete" and isinstance(info.value, DirEngError)
    assert parse_scopes("index:read index:delete", strict=False) == ("index:read",)
    with pytest.raises(UnknownScopeError):
        parse_scopes([42])


def test_jupyterhub_custom_scope_mapping():
    assert hub_scope("index:read") == "custom:direng:index:read"
    assert hub_scope("runs:execute") == "custom:direng:runs:execute"
    for scope in ALL_SCOPES:
        assert HUB_CUSTOM_SCOPE_RE.match(hub_scope(scope)), scope
        assert from_hub_scope(hub_scope(scope)) == scope
        assert from_hub_scope(hub_scope(scope) + "!user=alice") == scope
    assert from_hub_scope("custom:direng:nope:nope") is None and from_hub_scope("read:users") is None
    assert set(hub_custom_scopes()) == {hub_scope(s) for s in ALL_SCOPES}
    with pytest.raises(UnknownScopeError):
        hub_scope("admin:all")


# -- CLI ---------------------------------------------------------------------------------------------

def run_token_cli(capsys, *argv: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    from direng_kernel.cli import token_cmd

    parser = argparse.ArgumentParser(prog="direng")
    sub = parser.add_subparsers(dest="command")
    token_cmd.add_parser(sub)
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = token_cmd.run(parser.parse_args(list(argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_mint_prints_a_verifiable_token_last(capsys):
    code, out, err = run_token_cli(capsys, "token", "mint", "--scope", "index:read", "--scope",
                                   "tasks:read runs:replay", "--ttl", "600", "--subject", "alice")
    assert code == 0
    token = out.strip().splitlines()[-1]
    claims = verify(token, required_scope="runs:replay", user="alice")
    assert claims.scopes == ("index:read", "tasks:read", "runs:replay")
    assert claims.expires_at - claims.issued_at == 600
    assert "alice" in err and "runs:replay" in err and claims.kid in err

    code, out, _ = run_token_cli(capsys, "token", "mint", "--scope", "lane")
    assert code == 0 and verify(out.splitlines()[-1]).scopes == LANE_SCOPES


def test_cli_mint_errors_are_one_line(capsys):
    code, out, err = run_token_cli(capsys, "token", "mint", "--scope", "index:everything")
    assert code == 1 and out == "" and err.count("\n") == 1 and "unknown scope 'index:everything'" in err
    code, _, err = run_token_cli(capsys, "token", "mint", "--scope", "index:read", "--ttl", str(MAX_TTL_S + 1))
    assert code == 1 and "ttl" in err


def test_cli_inspect_reports_validity(capsys, monkeypatch):
    token = mint("alice", ["index:read"])
    code, out, _ = run_token_cli(capsys, "token", "inspect", token)
    report = json.loads(out)
    assert code == 0 and report["valid"] is True and report["reason"] is None
    assert report["header"]["kid"] == get_keystore().active_kid and report["claims"]["sub"] == "alice"
    assert set(report["times"]) == {"iat", "nbf", "exp"}

    code, out, _ = run_token_cli(capsys, "token", "inspect", "-", stdin=token + "\n", monkeypatch=monkeypatch)
    assert code == 0 and json.loads(out)["valid"] is True

    code, out, _ = run_token_cli(capsys, "token", "inspect", token, "--scope", "policy:admin")
    assert code == 1 and json.loads(out)["reason"] == "missing scope 'policy:admin'"

    expired = mint("alice", ["index:read"], ttl_s=60, now=time.time() - 3600)
    code, out, _ = run_token_cli(capsys, "token", "inspect", expired)
    report = json.loads(out)
    assert code == 1 and report["valid"] is False and report["reason"] == "invalid token: expired"
    assert report["claims"]["sub"] == "alice"  # claims are shown even when invalid

    code, out, _ = run_token_cli(capsys, "token", "inspect", "not-a-token")
    report = json.loads(out)
    assert code == 1 and report["header"] is None and report["claims"] is None and "not a JWT" in report["reason"]


def test_cli_keys_rotate_and_jwks(capsys, keys_dir):
    token = mint("alice", ["index:read"])
    old = get_keystore().active_kid
    code, out, err = run_token_cli(capsys, "keys", "rotate")
    new = out.strip().splitlines()[-1]
    assert code == 0 and new != old and old in err
    assert verify(token).kid == old
    code, out, _ = run_token_cli(capsys, "keys", "jwks", "--keys-dir", str(keys_dir))
    assert code == 0 and {k["kid"] for k in json.loads(out)["keys"]} == {old, new}


def test_cli_and_security_modules_import_light():
    code = ("import sys; import direng_kernel.cli.token_cmd, direng_kernel.security.tokens, "
            "direng_kernel.security.scopes, direng_kernel.security.keys; "
            "heavy = [m for m in ('jwt', 'cryptography', 'jupyter_server', 'torch') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_keystore_damage_is_a_clear_error(keys_dir):
    mint("alice", ["index:read"])
    (keys_dir / "keys.json").write_text("{not json")
    with pytest.raises(keys_mod.KeyStoreError, match="damaged"):
        KeyStore(keys_dir).ensure_active()
