"""PII detection: each kind in realistic text, the validators, false positives on real source,
masking, speed, and property tests with generated card numbers and IBANs."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from direng_kernel.security.pii import (
    IBAN_LENGTHS,
    PiiFinding,
    card_brand,
    contains_pii,
    find_pii,
    iban_mod97,
    iban_ok,
    luhn_ok,
    redact_pii,
)

ROOT = Path(__file__).resolve().parent.parent


def kinds(text: str, counting_only: bool = False) -> list[str]:
    return [f.kind for f in find_pii(text) if f.counts or not counting_only]


def only(text: str, kind: str) -> PiiFinding:
    found = [f for f in find_pii(text) if f.kind == kind]
    assert len(found) == 1, (text, found)
    return found[0]


# ---------------------------------------------------------------------------------------------
# Reference check digits, written from the standards (not the implementation's), and builders

def reference_luhn_ok(digits: str) -> bool:
    """ISO/IEC 7812-1 Annex B: double every second digit from the right, sum the digits."""
    total = 0
    for i, ch in enumerate(digits[::-1]):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def reference_iban_remainder(iban: str) -> int:
    """ISO 13616 / ISO 7064 MOD 97-10, computed piecewise as the ECBS guide describes: move the
    first four characters to the end, letters become 10..35, then carry the remainder of each
    piece into the next (the remainder's digits in front of the next seven)."""
    moved = iban[4:] + iban[:4]
    digits = "".join(str(ord(c) - ord("A") + 10) if c.isalpha() else c for c in moved.upper())
    remainder = 0
    for i in range(0, len(digits), 7):
        remainder = int(f"{remainder}{digits[i:i + 7]}") % 97
    return remainder


def luhn_complete(body: str) -> str:
    """`body` plus the Luhn check digit."""
    for d in "0123456789":
        if reference_luhn_ok(body + d):
            return body + d
    raise AssertionError("unreachable")


def make_iban(country: str, bban: str) -> str:
    check = 98 - reference_iban_remainder(country + "00" + bban)
    return f"{country}{check:02d}{bban}"


def spaced(compact: str) -> str:
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


# Published examples (the SWIFT IBAN registry's, quoted in every ISO 13616 guide), not built here.
# The best known are documentation examples to the detector: found, but they do not count.
PUBLISHED_IBANS = ["DE89370400440532013000", "GB29NWBK60161331926819", "FR1420041010050500013M02606",
                   "NL91ABNA0417164300", "BE68539007547034", "CH9300762011623852957", "NO9386011117947",
                   "ES9121000418450200051332", "IT60X0542811101000000123456", "MT84MALT011000012345MTLCAST001S"]
DOCUMENTATION_IBANS = ["DE89370400440532013000", "GB29NWBK60161331926819"]
# Real-looking ones that must count: a published example's account changed, its check digits
# recomputed with the reference above.
VALID_IBAN = make_iban("DE", "370400440532013999")
VALID_IBAN_GB = make_iban("GB", "NWBK60161331926811")


# ---------------------------------------------------------------------------------------------
# Each kind, in realistic text, on the right line

LETTER = f"""Dear support,

please update my details: jane.o'neil is wrong, my address is jane.oneil@fastmail.fm and
my phone is +44 20 7123 4018 (or 020 7123 4018 at the office).
Charge the card 5425 2334 3010 9903 for the renewal, refund to IBAN {spaced(VALID_IBAN)}.
For the tax form my SSN is 536-22-1234 and my NI number is AB 12 34 56 C.
I was connecting from 81.2.69.160 and 2a00:1450:4009:81f::200e when it failed.
US office: (415) 867-5309.
"""


@pytest.mark.parametrize("kind,line,preview", [
    ("email", 3, "j***@fastmail.fm"),
    ("phone", 4, None),
    ("credit_card", 5, "5425********9903"),
    ("iban", 5, VALID_IBAN[:4] + "*" * (len(VALID_IBAN) - 8) + VALID_IBAN[-4:]),
    ("ssn", 6, "***-**-1234"),
    ("nino", 6, "AB*******"),
    ("ipv4", 7, "81.2.*.*"),
    ("ipv6", 7, "2a00:****"),
])
def test_each_kind_found_on_its_line(kind, line, preview):
    found = [f for f in find_pii(LETTER) if f.kind == kind]
    assert found, f"no {kind} in the letter"
    f = found[0]
    assert f.line == line
    assert f.counts
    if preview:
        assert f.preview == preview
    # columns point at the value on its line
    text_line = LETTER.splitlines()[f.line - 1]
    assert text_line[f.column - 1:f.end_column] == LETTER[f.start:f.end]


def test_letter_findings_complete():
    found = find_pii(LETTER)
    phones = [LETTER[f.start:f.end] for f in found if f.kind == "phone"]
    assert phones == ["+44 20 7123 4018", "020 7123 4018", "(415) 867-5309"]
    assert contains_pii(LETTER)
    assert all(f.counts for f in found)


def test_card_formats_and_brands():
    amex = luhn_complete("37828224631000")
    assert only(f"amex {amex[:4]} {amex[4:10]} {amex[10:]} ok", "credit_card").note == "amex"
    visa = luhn_complete("400000000000000")
    assert only(f"visa {visa[:4]}-{visa[4:8]}-{visa[8:12]}-{visa[12:]}.", "credit_card").note == "visa"
    assert only(f"pan={visa}", "credit_card").preview == visa[:4] + "********" + visa[-4:]
    assert card_brand("5425233430109903") == "mastercard"
    assert card_brand("2221000000000009") == "mastercard"
    assert card_brand("6011000990139424") == "discover"
    assert card_brand("3530111333300000") == "jcb"
    assert card_brand("9999999999999995") is None


def test_test_cards_are_examples():
    f = only("use 4111 1111 1111 1111 in the sandbox", "credit_card")
    assert f.example and not f.counts
    assert not contains_pii("use 4242424242424242 in the sandbox")


# ---------------------------------------------------------------------------------------------
# Validators

def test_luhn_invalid_cards_rejected():
    good = "5425233430109903"
    assert luhn_ok(good)
    for i in range(len(good)):
        bad = good[:i] + str((int(good[i]) + 3) % 10) + good[i + 1:]
        assert "credit_card" not in kinds(f"card {bad}"), bad
    # mixed separators, wrong grouping, unknown issuer
    assert "credit_card" not in kinds("card 5425-2334 3010-9903")
    assert "credit_card" not in kinds("card 54 2523 3430 1099 03")
    assert "credit_card" not in kinds(f"id {luhn_complete('999999999999999')}")


@pytest.mark.parametrize("iban", PUBLISHED_IBANS)
def test_published_ibans_are_valid_and_found(iban):
    assert reference_iban_remainder(iban) == 1  # the reference agrees with the registry
    assert iban_ok(iban) and iban_mod97(iban) == 1
    assert IBAN_LENGTHS[iban[:2]] == len(iban)  # the registered length
    for shown in (iban, spaced(iban)):
        f = only(f"IBAN: {shown}\n", "iban")
        assert (f.start, f.end, f.note) == (6, 6 + len(shown), iban[:2]) and iban not in f.preview
        if iban in DOCUMENTATION_IBANS:
            assert f.example and not f.counts


def test_real_looking_ibans_count():
    for iban in (VALID_IBAN, VALID_IBAN_GB):
        assert reference_iban_remainder(iban) == 1 and iban_ok(iban)
        assert only(f"IBAN: {iban}", "iban").counts


def test_iban_checksum_and_length_rules():
    assert iban_ok(VALID_IBAN) and iban_ok(VALID_IBAN_GB)
    assert only(f"IBAN: {VALID_IBAN_GB}", "iban").line == 1
    bad_check = VALID_IBAN[:2] + f"{(int(VALID_IBAN[2:4]) + 1) % 100:02d}" + VALID_IBAN[4:]
    assert not iban_ok(bad_check)
    assert "iban" not in kinds(f"IBAN {bad_check}")
    assert "iban" not in kinds(f"IBAN {VALID_IBAN[:-1]}")  # wrong length for DE
    assert "iban" not in kinds("IBAN QQ" + VALID_IBAN[2:])  # unknown country
    # the spaced form followed by more words still ends at the registered length
    f = only(f"pay to {spaced(VALID_IBAN)} THEN 2024 done", "iban")
    assert f.end - f.start == len(spaced(VALID_IBAN))


@pytest.mark.parametrize("ssn", ["000-12-3456", "666-12-3456", "900-12-3456", "999-99-9999",
                                 "536-00-1234", "536-22-0000"])
def test_invalid_ssn_ranges_rejected(ssn):
    assert "ssn" not in kinds(f"SSN {ssn}")


def test_valid_ssn_and_advertised_examples():
    assert only("SSN 536-22-1234.", "ssn").counts
    assert not only("SSN 078-05-1120", "ssn").counts  # the Woolworth wallet card


@pytest.mark.parametrize("text", ["NI GB 12 34 56 A", "NI DA123456A", "NI AB123456E", "NI AB 12 3456 C"])
def test_invalid_nino_rejected(text):
    assert "nino" not in kinds(text)


@pytest.mark.parametrize("text", ["host 256.1.1.1", "host 10.0.0.300", "host 999.999.999.999",
                                  "host 01.02.03.04", "v1.2.3.4", "1.2.3.4.5"])
def test_invalid_ipv4_rejected(text):
    assert "ipv4" not in kinds(text)


def test_ip_classification():
    by_value = {}
    text = ("peers 10.1.2.3 172.16.0.9 192.168.1.20 8.8.4.4 127.0.0.1 0.0.0.0 255.255.255.0 "
            "192.0.2.33 ::1 fe80::1ff:fe23:4567:890a 2001:db8::ff00:42:8329 2606:4700:4700::1111")
    for f in find_pii(text):
        by_value[text[f.start:f.end]] = f
    for private in ("10.1.2.3", "172.16.0.9", "192.168.1.20"):
        assert by_value[private].counts and by_value[private].note == "private"
    assert by_value["8.8.4.4"].note == "public" and by_value["8.8.4.4"].counts
    assert by_value["127.0.0.1"].benign and by_value["0.0.0.0"].benign and by_value["255.255.255.0"].benign
    assert by_value["192.0.2.33"].example
    assert "::1" not in by_value  # too ambiguous in code (slices); loopback anyway
    assert by_value["fe80::1ff:fe23:4567:890a"].counts
    assert by_value["2001:db8::ff00:42:8329"].example
    assert by_value["2606:4700:4700::1111"].note == "public"
    assert not contains_pii("listen on 127.0.0.1:8080 and 0.0.0.0")


def test_version_like_dotted_quads_are_benign():
    for text in ('version = "1.2.3.4"', "requests==2.31.0.1", "Version: 4.10.3.2"):
        found = [f for f in find_pii(text) if f.kind == "ipv4"]
        assert all(f.benign for f in found), text
        assert not contains_pii(text)


def test_email_rules():
    assert kinds("mail bob.smith+tag@mail.co.uk today") == ["email"]
    for text in ("@property\ndef x(self): ...", "y = x@self.weight", "a@b.T", "user@localhost",
                 "icon@2x.png", "npm i lodash@4.17.21", "see main@index.js", "@types/node@18.0.0",
                 "https://user:token@github.com/o/r.git", "https://ghp_abc123@github.com/o/r.git"):
        assert "email" not in kinds(text), text
    for text in ("mail bob@example.com", "mail bob@sub.example.org", "mail a@b.test", "x@foo.example"):
        f = only(text, "email")
        assert f.example and not f.counts, text
    assert only("git clone git@github.com:o/r.git", "email").benign


def test_phone_false_positive_guards():
    negatives = [
        "version 10.15.7 and 2023.10.1234", "released 2024-01-15 12:30:45", "ip 192.168.100.200",
        "total = 12345678901234", "ts 1700000000000", "x = a + 1234567890", "semver 1.0.0+20130313144700",
        "zip 90210-1234", "range 01 02 03 04 05", "hexdump 00000010 4865 6c6c", "call 123-456-7890",
        "uuid 123e4567-e89b-12d3-a456-426614174000", "matrix 512 768 1024",
    ]
    for text in negatives:
        assert "phone" not in kinds(text), text


def test_phone_formats():
    for text in ("+1 (415) 867-5309", "+14158675309", "+33 6 12 34 56 78", "+49 (0)30 1234567",
                 "tel: 415.867.5309", "06 12 34 56 78", "07700 900123"):
        assert kinds(text) == ["phone"], text
    assert only("call 555-0199 or 415-555-0134", "phone").example
    for drama in ("020 7946 0958", "+44 20 7946 0958", "07700 900123", "+44 7700 900123"):
        assert only(drama, "phone").example, drama  # Ofcom's ranges for fiction
    assert only("020 7123 4567", "phone").counts


# ---------------------------------------------------------------------------------------------
# False positives on ordinary source

NEGATIVE_SOURCES = [
    "direng_kernel/discovery.py", "direng_kernel/cli/main.py", "direng_kernel/config.py",
    "direng_kernel/engine.py", "direng_kernel/server/app.py", "direng_kernel/index/parse.py",
    "direng_kernel/security/pii.py", "direng_kernel/security/licenses/texts.py",
    "direng_kernel/security/licenses/manifests.py", "direng_kernel/security/licenses/patches.py",
    "tests/fixtures/sample_repo/web/api.ts", "tests/fixtures/langs/shapes.ts",
    "tests/fixtures/langs/Button.tsx", "tests/fixtures/langs/server.go", "tests/fixtures/langs/geometry.rs",
]


@pytest.mark.parametrize("rel", NEGATIVE_SOURCES)
def test_no_pii_in_ordinary_source(rel):
    path = ROOT / rel
    assert path.is_file(), f"{rel} is not in this checkout: update NEGATIVE_SOURCES"
    text = path.read_text(encoding="utf-8")
    counting = [f for f in find_pii(text) if f.counts]
    assert counting == [], [str(f) for f in counting]


def test_no_pii_in_code_idioms():
    code = '''
import numpy as np
x = a @ b.T; y = x@self.weight; z = arr[1::2]; w = arr[::-1]; q = arr[100::200]
let v: Vec<u8> = Vec::<u8>::new(); std::io::stdin(); Self::Add
const t = "12:34:56"; mac = "00:1a:2b:3c:4d:5e"; sha = "3f786850e387550fdab836ed7e6dc881de23001b"
date = "2024-01-15"; ver = "v1.2.3"; big = 123456789012345678; neg = -4111111111111112
@app.route("/users/<int:id>")
def handler(id): return {"id": id, "limit": 1000000, "hex": 0xDEADBEEF}
'''
    assert [str(f) for f in find_pii(code) if f.counts] == []


# ---------------------------------------------------------------------------------------------
# Masking

def test_masking_never_leaks_the_value():
    for f in find_pii(LETTER):
        value = LETTER[f.start:f.end]
        compact = re.sub(r"[\s\-().]", "", value)
        for rendered in (f.preview, repr(f), str(f), json.dumps(f.to_dict())):
            assert value not in rendered, (f.kind, rendered)
            assert compact not in rendered, (f.kind, rendered)


def test_redact_pii():
    out = redact_pii("mail jane.oneil@fastmail.fm from 127.0.0.1")
    assert out == "mail [PII:email] from 127.0.0.1"
    assert redact_pii("from 127.0.0.1", include_benign=True) == "from [PII:ipv4]"


def test_empty_and_clean_text():
    assert find_pii("") == []
    assert not contains_pii("nothing to see here, just words and 42")


# ---------------------------------------------------------------------------------------------
# Speed

def test_one_megabyte_of_source_with_letters_in_it():
    """Every copy of the letter in 1 MB of ordinary source is found, nothing else counts.
    (How fast: benchmarks/safety_bench.py.)"""
    chunk = "\n".join((ROOT / rel).read_text(encoding="utf-8") for rel in NEGATIVE_SOURCES) + "\n" + LETTER
    copies = 1_000_000 // len(chunk) + 1
    text = chunk * copies
    found = [f for f in find_pii(text) if f.counts]
    letter = [f for f in find_pii(LETTER) if f.counts]
    assert letter and len(found) == copies * len(letter)
    assert sum(f.kind == "credit_card" for f in found) == copies


# ---------------------------------------------------------------------------------------------
# Properties

CARD_SPECS = [("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16),
              ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("3528", 16), ("36", 14), ("62", 17)]


@st.composite
def valid_cards(draw):
    prefix, length = draw(st.sampled_from(CARD_SPECS))
    body = draw(st.text(alphabet="0123456789", min_size=length - len(prefix) - 1,
                        max_size=length - len(prefix) - 1))
    number = luhn_complete(prefix + body)
    assume(len(set(number)) > 1)
    return number


@st.composite
def valid_ibans(draw):
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    n = IBAN_LENGTHS[country] - 4
    bban = draw(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=n, max_size=n))
    assume(any(c.isdigit() for c in bban))
    return make_iban(country, bban)


def change_one_digit(value: str, data, start: int = 0) -> str:
    positions = [i for i in range(start, len(value)) if value[i].isdigit()]
    i = data.draw(st.sampled_from(positions))
    d = data.draw(st.sampled_from([c for c in "0123456789" if c != value[i]]))
    return value[:i] + d + value[i + 1:]


FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.text(alphabet="0123456789 .-+()/:\n", max_size=300))
def test_random_digit_strings_never_crash(text):
    for f in find_pii(text):
        assert 0 <= f.start < f.end <= len(text)
        assert f.preview != text[f.start:f.end]


@FAST
@given(st.text(max_size=200))
def test_random_text_never_crashes(text):
    find_pii(text)


@FAST
@given(valid_cards(), st.booleans())
def test_valid_cards_always_found(number, grouped):
    shown = spaced(number) if grouped and len(number) == 16 else number
    found = [f for f in find_pii(f"paid with {shown} yesterday") if f.kind == "credit_card"]
    assert len(found) == 1
    assert number not in found[0].preview


@FAST
@given(valid_cards(), st.data())
def test_cards_with_one_digit_changed_are_not_found(number, data):
    bad = change_one_digit(number, data)
    assert not luhn_ok(bad)
    assert "credit_card" not in kinds(f"paid with {bad} yesterday")


@FAST
@given(valid_ibans(), st.booleans())
def test_valid_ibans_always_found(iban, grouped):
    found = [f for f in find_pii(f"IBAN: {spaced(iban) if grouped else iban}\n") if f.kind == "iban"]
    assert len(found) == 1
    assert iban not in found[0].preview


@FAST
@given(valid_ibans(), st.data())
def test_ibans_with_one_digit_changed_are_not_found(iban, data):
    bad = change_one_digit(iban, data, start=2)
    assert "iban" not in kinds(f"IBAN: {bad}\n")


def test_luhn_matches_a_reference_implementation():
    rng = random.Random(7)
    for _ in range(500):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(12, 19)))
        assert luhn_ok(digits) == reference_luhn_ok(digits)


def test_iban_mod97_matches_a_reference_implementation():
    rng = random.Random(11)
    for _ in range(500):
        country = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(2))
        bban = "".join(rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.randint(11, 30)))
        iban = f"{country}{rng.randint(0, 99):02d}{bban}"
        assert iban_mod97(iban) == reference_iban_remainder(iban)
