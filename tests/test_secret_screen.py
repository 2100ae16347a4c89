"""The line screen of secret detection finds exactly what the full pass finds.

`secrets._scan(..., screen=True)` runs the detectors only on the lines a few whole-text
searches mark as possible; `screen=False` is the reference (every detector on every line,
the detection as it was before the screen). They are compared over real text (this
repository's sources and tests, which plant many secrets, and detect-secrets' own sources),
a synthetic corpus with a secret of every kind in many spellings, file kinds and line
endings, and generated text — and the comparison is of every finding: type, line, digest,
value, in order.
"""

from __future__ import annotations

import base64
import random
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from direng_kernel.security import scrub
from direng_kernel.security import secrets as S

REPO = Path(__file__).resolve().parents[1]
KINDS = ("app.py", "web.js", ".env", "config.yaml", "settings.ini", "data.json", "notes.md", "package-lock.json",
         "credentials", "main.go", "<text>")


def _both(text: str, kind: str) -> tuple[list, list]:
    def key(findings):
        return [(f.type, f.line, f.digest, f._value) for f in findings]

    return key(S._scan(text, kind, kind, screen=True)), key(S._scan(text, kind, kind, screen=False))


def _rand(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def synthetic_secrets(rng: random.Random) -> list[str]:
    """One value or line for every detector, freshly generated."""
    hexd, low = "0123456789abcdef", string.ascii_lowercase + string.digits
    jwt_head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    jwt_body = base64.urlsafe_b64encode(f'{{"sub":"{_rand(rng, 8)}"}}'.encode()).decode().rstrip("=")
    return [
        "AKIA" + _rand(rng, 16, string.ascii_uppercase + string.digits),
        f'aws_secret_key = "{_rand(rng, 40)}"',
        f'AWS_PASSWORD: "{_rand(rng, 40, string.ascii_letters + "/+")}"',
        f"AccountKey={_rand(rng, 86)}==",
        f"https://{_rand(rng, 6, low)}:{_rand(rng, 12)}@db.internal.example.net/x",
        f'cloudant_password = "{_rand(rng, 64, hexd)}"',
        f"CL-API-TOKEN: {_rand(rng, 24, string.ascii_lowercase)}",
        f"https://user:{_rand(rng, 24, string.ascii_lowercase)}@acct.cloudant.com",
        f"M{_rand(rng, 23)}.{_rand(rng, 6)}.{_rand(rng, 27)}",
        "ghp_" + _rand(rng, 36),
        "glpat-" + _rand(rng, 20),
        "glcbt-" + _rand(rng, 24),
        f'ibm_cloud_iam_api_key = "{_rand(rng, 44)}"',
        f"'IBM-COS-HMAC-SECRET-ACCESS-KEY': '{_rand(rng, 48, hexd)}'",
        f"eyJ{jwt_head[3:]}.{jwt_body}.{_rand(rng, 43)}",
        f"{_rand(rng, 32, low)}-us{rng.randint(1, 20)}",
        f"//registry.npmjs.org/:_authToken=npm_{_rand(rng, 36)}",
        f"sk-{_rand(rng, 20)}T3BlbkFJ{_rand(rng, 20)}",
        "pypi-AgEIcHlwaS5vcmc" + _rand(rng, 72),
        f"SG.{_rand(rng, 22)}.{_rand(rng, 43)}",
        f"xoxb-{rng.randint(10**9, 10**10)}-{_rand(rng, 12, low)}",
        f"https://hooks.slack.com/services/T{_rand(rng, 8)}/B{_rand(rng, 8)}/{_rand(rng, 24)}",
        f'softlayer_api_key = "{_rand(rng, 64, low)}"',
        f"https://api.softlayer.com/soap/v3/{_rand(rng, 64, low)}",
        "sq0csp-" + _rand(rng, 43),
        "sk_live_" + _rand(rng, 24),
        "rk_live_" + _rand(rng, 24),
        f"{rng.randint(10**7, 10**9)}:{_rand(rng, 35)}",
        "AC" + _rand(rng, 32, low),
        "SK" + _rand(rng, 32, low),
        f" AKC{_rand(rng, 12)} ",
        f'="AP6{_rand(rng, 10)}"',
        f'password = "{_rand(rng, 14, string.ascii_letters + string.digits + "!#%")}"',
        f"DB_PASS={_rand(rng, 16)}",
        f"contraseña: {_rand(rng, 12)}",
        f'token = "{_rand(rng, 30)}"',
        f'value = "{_rand(rng, 40, hexd)}"',
        f'blob = "{base64.b64encode(rng.randbytes(33)).decode()}"',
        f"bare {_rand(rng, 40, string.ascii_letters + string.digits + '_-')} token",
        "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(_rand(rng, 64) for _ in range(3))
        + "\n-----END RSA PRIVATE KEY-----",
    ]


def _spellings(rng: random.Random, line: str) -> list[str]:
    """The line as written, shouted, in a case a Unicode fold still matches, and allowlisted."""
    folded = line.replace("k", "\u212a").replace("s", "\u017f", 1).replace("i", "\u0130", 1)
    return [line, line.upper(), line.swapcase(), folded, line + "  # pragma: allowlist secret",
            f"{_rand(rng, 5)} = {line!r}", f"x({line}, {line})"]


def synthetic_corpus(seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    filler = ["def f(x):", "    return x + 1", "", "# a comment about keys and passwords", "class Meta:",
              "    ordering = ['name']", "SELECT * FROM t WHERE id = 1", "    'django.contrib.auth',",
              "nacionalización 'ünïcödé' ıİ Straße", "\t\tindent", "  # pragma: allowlist nextline secret"]
    texts = []
    for i, secret in enumerate(synthetic_secrets(rng)):
        for variant in _spellings(rng, secret):
            lines = rng.sample(filler, 4) + [variant] + rng.sample(filler, 3)
            sep = rng.choice(["\n", "\r\n", "\r", "\x0c\n", "\u2028", "\n\n"])
            texts.append((KINDS[i % len(KINDS)], sep.join(lines)))
    everything = "\n".join(t for _, t in texts)
    texts += [(kind, everything) for kind in KINDS]  # every detector at once, under every rule set
    return texts


def real_corpus() -> list[tuple[str, str]]:
    import detect_secrets

    roots = [REPO / "direng_kernel", REPO / "tests", Path(detect_secrets.__file__).parent]
    out = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in {".py", ".md", ".json", ".yaml", ".yml", ".toml", ".cfg", ".txt"} and path.is_file():
                out.append((str(path.relative_to(root.parent)), path.read_text("utf-8", errors="replace")))
    return out


def test_screen_matches_the_full_pass_on_synthetic_secrets_of_every_kind():
    corpus = synthetic_corpus()
    types = set()
    screened = 0
    for kind, text in corpus:
        new, old = _both(text, kind)
        assert new == old, (kind, text)
        types |= {f[0] for f in old}
        plugins = [p for p in S._plugins() if p.name != "PrivateKeyDetector"]
        screened += S._screened_lines(text, text.splitlines(), plugins) is not None
    # the corpus exercises the detectors, and mostly through the screen (not its full-pass fallback)
    assert len(types) >= 20, sorted(types)
    assert screened >= len(corpus) // 2


def test_screen_matches_the_full_pass_on_real_sources():
    corpus = real_corpus()
    found = 0
    for name, text in corpus:
        new, old = _both(text, name)
        assert new == old, name
        found += len(old)
    assert len(corpus) > 100 and found > 50  # this repository's tests plant secrets of many kinds


_line_parts = st.sampled_from([
    "password", "PASSWORD", "api_key", "secret", "ſecret", "\u212aey", "token", "aws", "AKIA", "ghp_", "xoxb-",
    "sk_live_", "eyJ", "://", "@", ":", "=", " = ", "'", '"', "[", "]", "cloudant", "cl", "ibm", "softlayer",
    "AccountKey=", "-us", "AC", "SK", "AP", "AKC", "glpat-", "SG.", "sq0csp-", "T3BlbkFJ", "pypi-", "/:_authToken=",
    "https://", ".cloudant.com", "hooks.slack.com/services/T", "/B", "İ", "ı", "\t", " ",
])
_runs = st.text(alphabet=string.ascii_letters + string.digits + "+/=_-", min_size=0, max_size=70)
_lines = st.lists(st.one_of(_line_parts, _runs), max_size=12).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_lines, min_size=1, max_size=6), st.sampled_from(["\n", "\r\n", "\r", "\u2028", "\x0c"]),
       st.sampled_from(KINDS))
def test_screen_matches_the_full_pass_on_generated_text(lines, sep, kind):
    text = sep.join(lines)
    new, old = _both(text, kind)
    assert new == old


def test_scrub_values_are_the_same_with_the_screen_off(monkeypatch):
    """What the index learns and redacts (`secret_values`) does not depend on the screen."""
    corpus = synthetic_corpus(seed=11)[:120]
    with_screen = [scrub.secret_values(text, kind) for kind, text in corpus]
    monkeypatch.setenv("DIRENG_SECRET_SCREEN", "0")
    without = [scrub.secret_values(text, kind) for kind, text in corpus]
    assert with_screen == without
    assert sum(len(v) for v, _ in without) >= 50


@pytest.mark.parametrize("pattern", [r"abc(?:de|fg)h", r"(?i)(?:x|y)_?token", r"(?:foo|)bar", r"a+b{2}c?"])
def test_literal_needs_are_necessary(pattern):
    """Every match of a pattern holds a literal of each need (checked on generated matches)."""
    import re

    rx = re.compile(pattern)
    needs = S._literal_needs(rx) or ()
    samples = {"abcdeh": 1, "abcfgh": 1, "X_TOKEN": 1, "ytoken": 1, "bar": 1, "foobar": 1, "aabbc": 1, "abb": 1}
    for text in samples:
        if rx.search(text):
            assert all(n.regex.search(text) for n in needs), (pattern, text)
