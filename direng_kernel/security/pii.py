"""PII detection: a fast regex pass whose every candidate goes through a validator.

`find_pii(text)` returns `PiiFinding`s for e-mail addresses, phone numbers, payment card
numbers, IBANs, national identifiers (US SSN, UK NINO) and IP addresses. Regexes only propose
candidates; a finding is kept when its validator accepts it (Luhn and issuer prefixes for
cards, ISO 13616 mod-97 and the per-country length for IBANs, the SSA's never-issued ranges
for SSNs, octet ranges and `ipaddress` for IPs, digit counts and "not a version, date,
slice or sequence" rules for phones). Findings that are not personal data in practice are
kept but marked: `benign` (loopback and unspecified addresses, netmasks, multicast,
version-like dotted quads, `git@github.com`-style service addresses) or `example`
(RFC 2606/6761 domains, RFC 5737/3849 documentation networks, well-known test card
numbers and IBANs, fictional 555-01xx phones, advertised SSNs). `contains_pii` ignores both.

A finding never holds the matched value: it carries a masked `preview` (`4111********1111`)
and the offsets, so a caller that holds the text can redact it (`redact_pii`).

`DIRENG_PII_ENGINE=presidio` adds Microsoft Presidio's analyzer on top of the regex pass when
`presidio-analyzer` is importable (it is not a dependency); otherwise the regex engine runs
alone and a warning is logged once.
"""

from __future__ import annotations

import bisect
import ipaddress
import logging
import os
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Callable, Iterator

log = logging.getLogger(__name__)

KINDS = ("email", "phone", "credit_card", "iban", "ssn", "nino", "ipv4", "ipv6")


@dataclass(frozen=True)
class PiiFinding:
    """One piece of PII. `column`/`end_column` are 1-based and inclusive on the line `line`;
    `start`/`end` are 0-based offsets into the scanned text (end exclusive). The value itself
    is never stored: `preview` is masked."""

    kind: str
    line: int
    column: int
    end_column: int
    preview: str
    start: int
    end: int
    example: bool = False
    benign: bool = False
    note: str = ""

    @property
    def counts(self) -> bool:
        """True when this finding is real PII (neither benign nor an example)."""
        return not (self.benign or self.example)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        flags = "".join(f" [{w}]" for w, on in (("example", self.example), ("benign", self.benign)) if on)
        note = f" ({self.note})" if self.note else ""
        return f"{self.line}:{self.column}: {self.kind} {self.preview}{note}{flags}"


# ---------------------------------------------------------------------------------------------
# Masking

def _mask_chars(value: str, head: int, tail: int) -> str:
    """Keep `head` leading and `tail` trailing alphanumerics, star the rest, drop separators."""
    chars = [c for c in value if c.isalnum()]
    n = len(chars)
    if head + tail >= n:  # never show everything: keep at most half
        head, tail = 0, min(tail, n // 2)
    return "".join(chars[:head]) + "*" * (n - head - tail) + "".join(chars[n - tail:] if tail else [])


def _mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[0]}***@{domain}" if len(local) > 1 else f"***@{domain}"


def _mask_phone(value: str) -> str:
    return ("+" if value.startswith("+") else "") + _mask_chars(value, 0, 2)


def _mask_ssn(value: str) -> str:
    return "***-**-" + value[-4:]


def _mask_ipv4(value: str) -> str:
    a, b, _, _ = value.split(".")
    return f"{a}.{b}.*.*"


def _mask_ipv6(value: str) -> str:
    first = next((g for g in value.split(":") if g), "")
    return f"{first}:****"


MASKERS: dict[str, Callable[[str], str]] = {
    "email": _mask_email,
    "phone": _mask_phone,
    "credit_card": lambda v: _mask_chars(v, 4, 4),
    "iban": lambda v: _mask_chars(v, 4, 4),
    "ssn": _mask_ssn,
    "nino": lambda v: _mask_chars(v, 2, 0),
    "ipv4": _mask_ipv4,
    "ipv6": _mask_ipv6,
}


def mask(kind: str, value: str) -> str:
    """The masked preview of `value` for a finding of `kind` (unknown kinds: all starred)."""
    masker = MASKERS.get(kind)
    return masker(value) if masker else _mask_chars(value, 0, 0)


# ---------------------------------------------------------------------------------------------
# Validators (public: the tests and other modules use them)

def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check over a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The card network for a PAN by issuer prefix (IIN) and length, or None."""
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= p3 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if 2200 <= p4 <= 2204 and 16 <= n <= 19:
        return "mir"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if p4 in (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763) and 12 <= n <= 19:
        return "maestro"
    return None


# ISO 13616 IBAN lengths by country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def iban_mod97(compact: str) -> int:
    """ISO 7064 mod 97-10 of an IBAN (country code and check digits moved to the end)."""
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97


def iban_ok(compact: str) -> bool:
    """Country known, length as registered, BBAN alphanumeric, mod-97 equal to 1."""
    compact = compact.upper()
    length = IBAN_LENGTHS.get(compact[:2])
    return (
        length == len(compact)
        and compact[2:4].isdigit()
        and compact[4:].isalnum()
        and compact.isascii()
        and iban_mod97(compact) == 1
    )


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


_NINO_BAD_PREFIXES = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


def nino_ok(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    return bool(_NINO_COMPACT.fullmatch(compact)) and compact[:2] not in _NINO_BAD_PREFIXES


# ---------------------------------------------------------------------------------------------
# Candidate patterns. Lookarounds keep matches whole (never the middle of a longer token).


def _rx(pattern: str) -> re.Pattern[str]:
    """Compile with ASCII digits: `\\d` would also match Arabic-Indic and other digits."""
    return re.compile(pattern.replace(r"\d", "[0-9]"))


# E-mail addresses are found from their `@`: the local part is matched backwards from it.
_EMAIL_LOCAL = _rx(r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}\Z")
_EMAIL_DOMAIN = _rx(
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24}))(?![\w\-]|\.[A-Za-z0-9])"
)
_URL_USERINFO = re.compile(r"://[^\s/@:]*:\Z")
# Generic TLDs accepted besides any two-letter country code; unknown long "TLDs" are almost
# always attribute access in code (`x@self.weight`, `a@b.shape`).
_GENERIC_TLDS = frozenset(
    "com net org edu gov mil int info biz name pro mobi aero asia coop jobs museum tel travel "
    "app dev xyz online site tech store shop cloud email page blog design agency company "
    "solutions services digital network systems software studio team tools world zone life "
    "live news media group global link click space website today support center academy "
    "consulting engineering finance capital law legal health care ventures works social "
    "family art games expert club one top win bank insurance school university ngo foundation "
    "local internal lan corp home test example invalid localhost".split()
)
# Two-letter "TLDs" that are far more often a file extension in code than a country.
_FILE_EXT_TLDS = frozenset("js ts py md rs sh go rb kt cs".split())
_RESERVED_TLDS = frozenset({"test", "example", "invalid", "localhost"})
# Domains used as placeholders far more often than for mail (flagged `example`, like RFC 2606).
_PLACEHOLDER_DOMAINS = frozenset({"test.com", "test.org", "domain.com", "email.com", "foo.com", "bar.com",
                                  "foobar.com", "yourdomain.com", "company.com"})
_SERVICE_EMAILS = frozenset({"git@github.com", "git@gitlab.com", "git@bitbucket.org", "git@ssh.dev.azure.com",
                             "noreply@github.com"})

_SEP = r"[ .\-]"
_PHONE_E164 = _rx(
    r"(?=\+)(?<![\w+/=.])\+(?:\d{9,15}|[1-9]\d{0,3}(?:" + _SEP + r"?\(\d{1,5}\)\d{0,8}|" + _SEP + r"\d{1,8}){1,7})"
    r"(?![\w+]|[.\-]?\d)"
)
_PHONE_NANP = _rx(
    r"(?=[(0-9])(?<![\w.\-+/])(?<!\d )(?:1[ .\-])?(?:\((\d{3})\)[ ]?(\d{3})[.\-]\d{4}|(\d{3})([.\-])(\d{3})\4\d{4})"
    r"(?![\w]|[.\-]\d| \d)"
)
_PHONE_TRUNK = _rx(
    r"(?=[(0])(?<![\w.\-+/])(?<!\d )(?<!\d-)\(?0[1-9]\d{0,4}\)?[ \-]\d{2,8}(?:[ \-]\d{2,4}){0,3}(?![\w]|[.\-]?\d| \d)"
)
_CARD = _rx(r"(?=[0-9])(?<![\w.\-+/])(?<!\d )(?<!\d-)\d(?:[ \-]?\d){12,18}(?![\w]|[.\-]?\d| \d)")
_IBAN = _rx(r"(?=[A-Z])(?<![\w])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?(?![\w])")
_SSN = _rx(r"(?=[0-9])(?<![\w\-/.])(\d{3})-(\d{2})-(\d{4})(?![\w]|-\d)")
_NINO = _rx(r"(?=[A-Z])(?<![\w])[A-Z]{2}[ ]?\d{2}[ ]?\d{2}[ ]?\d{2}[ ]?[A-D](?![\w])")
_NINO_COMPACT = _rx(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]")
_IPV4 = _rx(r"(?=[0-9])(?<![\w.\-])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w\-]|\.\d)")
_IPV6 = _rx(
    r"(?=[0-9A-Fa-f:])(?<![\w:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}"
    r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\d)"
)
_VERSION_CONTEXT = re.compile(r"(?:version|ver|release|rev|==|>=|<=|~=|!=|\^|~|@)[\s\"'=:]{0,4}$", re.I)

_TEST_CARDS = frozenset({
    "4111111111111111", "4242424242424242", "4012888888881881", "4000056655665556", "4222222222222",
    "5555555555554444", "5105105105105100", "5200828282828210", "2223003122003222",
    "378282246310005", "371449635398431", "378734493671000", "6011111111111117",
    "6011000990139424", "3530111333300000", "3566002020360505", "30569309025904",
    "38520000023237", "6200000000000005",
})
_EXAMPLE_IBANS = frozenset({
    "GB82WEST12345698765432", "GB29NWBK60161331926819", "DE89370400440532013000",
    "FR1420041010050500013M02606", "NL91ABNA0417164300", "CH9300762011623852957",
})
_EXAMPLE_SSNS = frozenset({"078-05-1120", "219-09-9999", "123-45-6789"})
_DOC_NETS = tuple(ipaddress.ip_network(n) for n in
                  ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))
_MASK_OCTETS = frozenset({0, 128, 192, 224, 240, 248, 252, 254, 255})


# A candidate is (kind, start, end, value, example, benign, note).
Candidate = tuple[str, int, int, str, bool, bool, str]


def _emails(text: str) -> Iterator[Candidate]:
    if "@" not in text:
        return
    for at in re.finditer("@", text):
        i = at.start()
        dm = _EMAIL_DOMAIN.match(text, i + 1)
        if dm is None:
            continue
        lm = _EMAIL_LOCAL.search(text, max(0, i - 64), i)
        if lm is None:
            continue
        start = lm.start()
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "._%+-/"):
            continue  # part of a longer token, or URL userinfo (`https://token@host`)
        if start > 0 and text[start - 1] == ":" and _URL_USERINFO.search(text, max(0, start - 200), start):
            continue  # `https://user:token@host`: credentials (the secret scanner's), not an address
        local, domain, tld = lm.group(0), dm.group(1).lower(), dm.group(2).lower()
        if ".." in local or local.endswith(".") or ".." in domain:
            continue
        if len(tld) == 2:
            if tld in _FILE_EXT_TLDS:
                continue
        elif tld not in _GENERIC_TLDS:
            continue
        labels = domain.split(".")
        value = text[start:dm.end()]
        example = (
            domain in _PLACEHOLDER_DOMAINS
            or tld in _RESERVED_TLDS
            or (len(labels) >= 2 and labels[-2] == "example")
            or (len(labels) >= 3 and labels[-3] == "example" and labels[-2] in ("co", "com", "org", "ac", "net"))
        )
        benign = value.lower() in _SERVICE_EMAILS
        yield "email", start, dm.end(), value, example, benign, "service address" if benign else ""


def _is_sequence(groups: list[str]) -> bool:
    """`01 02 03 04 05`, `10-20-30-40`: evenly spaced numbers are data, not a phone."""
    if len(groups) < 3 or len({len(g) for g in groups}) != 1:
        return False
    nums = [int(g) for g in groups]
    step = nums[1] - nums[0]
    return all(b - a == step for a, b in zip(nums, nums[1:]))


# Ofcom's ranges reserved for drama and documentation (London, Leeds, …, mobile).
_UK_DRAMA = ("02079460", "01134960", "01144960", "01154960", "01164960", "01174960", "01184960",
             "01214960", "01314960", "01414960", "01514960", "01614960", "01632960", "07700900")


def _phones(text: str) -> Iterator[Candidate]:
    if "+" in text:
        for m in _PHONE_E164.finditer(text):
            value = m.group(0)
            digits = re.sub(r"\D", "", value)
            if 9 <= len(digits) <= 15 and not _is_sequence(re.findall(r"\d+", value)[1:]):
                example = digits.startswith("44") and ("0" + digits[2:]).startswith(_UK_DRAMA)
                yield "phone", m.start(), m.end(), value, example, False, "international"
    for m in _PHONE_NANP.finditer(text):
        area = m.group(1) or m.group(3)
        exchange = m.group(2) or m.group(5)
        if area[0] in "01" or exchange[0] in "01":
            continue
        value = m.group(0)
        example = exchange == "555"  # fictional numbers (555-0100..0199 reserved, the rest mostly films)
        yield "phone", m.start(), m.end(), value, example, False, "north american"
    for m in _PHONE_TRUNK.finditer(text):
        value = m.group(0)
        groups = re.findall(r"\d+", value)
        digits = "".join(groups)
        if not 9 <= len(digits) <= 12 or _is_sequence(groups):
            continue
        seps = set(re.findall(r"[ \-]", value.replace(") ", ")")))
        if len(seps) > 1:
            continue
        yield "phone", m.start(), m.end(), value, digits.startswith(_UK_DRAMA), False, "national"


def _cards(text: str) -> Iterator[Candidate]:
    for m in _CARD.finditer(text):
        value = m.group(0)
        seps = set(value) & {" ", "-"}
        if len(seps) > 1:
            continue
        if seps:
            groups = re.split(r"[ \-]", value)
            if len(groups[0]) != 4 or any(not 3 <= len(g) <= 6 for g in groups[1:]):
                continue
        digits = value.replace(" ", "").replace("-", "")
        if len(set(digits)) == 1 or not luhn_ok(digits):
            continue
        brand = card_brand(digits)
        if brand is None:
            continue
        yield "credit_card", m.start(), m.end(), value, digits in _TEST_CARDS, False, brand


def _ibans(text: str) -> Iterator[Candidate]:
    for m in _IBAN.finditer(text):
        value = m.group(0)
        length = IBAN_LENGTHS.get(value[:2])
        if length is None:
            continue
        # The spaced form may run into following 4-character words: cut it at the registered
        # length when that falls on a group boundary.
        end, compact = m.start(), ""
        for tok in re.finditer(r"[A-Z0-9]+", value):
            compact += tok.group(0)
            end = m.start() + tok.end()
            if len(compact) >= length:
                break
        if len(compact) != length or not iban_ok(compact):
            continue
        yield "iban", m.start(), end, text[m.start():end], compact in _EXAMPLE_IBANS, False, compact[:2]


def _national_ids(text: str) -> Iterator[Candidate]:
    if "-" in text:
        for m in _SSN.finditer(text):
            if ssn_ok(*m.groups()):
                value = m.group(0)
                yield "ssn", m.start(), m.end(), value, value in _EXAMPLE_SSNS, False, "US SSN"
    for m in _NINO.finditer(text):
        value = m.group(0)
        spaces = value.count(" ")
        if spaces not in (0, 4) or not nino_ok(value):
            continue
        yield "nino", m.start(), m.end(), value, False, False, "UK NINO"


_DOC_V4 = frozenset({(192, 0, 2), (198, 51, 100), (203, 0, 113)})


def _classify_ipv4(n: list[int]) -> tuple[bool, bool, str]:
    """(example, benign, note) for a dotted quad, by range (cheaper than `ipaddress`)."""
    a, b = n[0], n[1]
    if a == 0:
        return False, True, "unspecified"
    if a == 127:
        return False, True, "loopback"
    if a == 255 and all(x in _MASK_OCTETS for x in n) and n == sorted(n, reverse=True):
        return False, True, "netmask"
    if a >= 240:
        return False, True, "reserved"
    if a >= 224:
        return False, True, "multicast"
    if (a, b, n[2]) in _DOC_V4:
        return True, False, "documentation"
    if a == 169 and b == 254:
        return False, False, "link-local"
    if a == 10 or (a == 172 and 16 <= b <= 31) or (a == 192 and b == 168):
        return False, False, "private"
    if a == 100 and 64 <= b <= 127:
        return False, False, "shared (CGNAT)"
    return False, False, "public"


def _ipv4s(text: str) -> Iterator[Candidate]:
    if "." not in text:
        return
    for m in _IPV4.finditer(text):
        octets = m.groups()
        if any(len(o) > 1 and o[0] == "0" for o in octets):  # leading zeros: not an address
            continue
        nums = [int(o) for o in octets]
        if any(n > 255 for n in nums):
            continue
        value = m.group(0)
        example, benign, note = _classify_ipv4(nums)
        if not (example or benign):
            line_start = text.rfind("\n", max(0, m.start() - 24), m.start()) + 1
            if _VERSION_CONTEXT.search(text, max(line_start, m.start() - 24), m.start()):
                benign, note = True, "version-like"
        yield "ipv4", m.start(), m.end(), value, example, benign, note


def _ipv6s(text: str) -> Iterator[Candidate]:
    if ":" not in text:
        return
    for m in _IPV6.finditer(text):
        value = m.group(0)
        head = value.rsplit(":", 1)[0] if "." in value else value
        groups = [g for g in head.split(":") if g]
        if len(groups) < 2 and "." not in value:
            continue  # `::`, `::1`, `x[::2]`, `Foo::<T>`
        if not (len(groups) >= 3 or any(len(g) >= 3 for g in groups) or "." in value):
            continue  # `1::2`: a slice
        if "::" in value and len(groups) <= 2 and all(g.isdigit() for g in groups):
            continue  # `x[100::200]`
        try:
            addr = ipaddress.IPv6Address(value)
        except ValueError:
            continue
        mapped = addr.ipv4_mapped
        if mapped is not None:
            example, benign, note = _classify_ipv4([int(o) for o in str(mapped).split(".")])
        elif addr.is_unspecified or addr.is_loopback:
            example, benign, note = False, True, "loopback" if addr.is_loopback else "unspecified"
        elif addr.is_multicast:
            example, benign, note = False, True, "multicast"
        elif any(addr in net for net in _DOC_NETS):
            example, benign, note = True, False, "documentation"
        elif addr.is_link_local:
            example, benign, note = False, False, "link-local"
        elif addr.is_private:
            example, benign, note = False, False, "private"
        else:
            example, benign, note = False, False, "public"
        yield "ipv6", m.start(), m.end(), value, example, benign, note


# Earlier detectors win overlaps (validated, specific ones first).
_DETECTORS: tuple[Callable[[str], Iterator[Candidate]], ...] = (
    _cards, _ibans, _national_ids, _emails, _ipv6s, _ipv4s, _phones,
)


class _Lines:
    """Offset → (line, column) with a lazily built table of line starts."""

    def __init__(self, text: str):
        self.text = text
        self._starts: list[int] | None = None

    def locate(self, offset: int) -> tuple[int, int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        i = bisect.bisect_right(self._starts, offset) - 1
        return i + 1, offset - self._starts[i] + 1


def _resolve(cands: list[tuple[int, Candidate]]) -> list[Candidate]:
    """Keep a set of disjoint candidates: of two that overlap, the one from the earlier
    detector wins, then the longer one."""
    cands.sort(key=lambda pc: pc[1][1])
    kept: list[tuple[int, Candidate]] = []
    for pc in cands:
        if kept and pc[1][1] < kept[-1][1][2]:
            last = kept[-1]
            if (pc[0], pc[1][1] - pc[1][2]) < (last[0], last[1][1] - last[1][2]):
                kept[-1] = pc
            continue
        kept.append(pc)
    return [c for _, c in kept]


def _regex_candidates(text: str) -> list[tuple[int, Candidate]]:
    return [(prio, c) for prio, detect in enumerate(_DETECTORS) for c in detect(text)]


def find_pii(text: str) -> list[PiiFinding]:
    """All PII findings in `text`, in order of position (benign and example ones included)."""
    if not text:
        return []
    cands = _regex_candidates(text)
    if os.environ.get("DIRENG_PII_ENGINE", "").strip().lower() == "presidio":
        cands += [(len(_DETECTORS), c) for c in _presidio_candidates(text)]
    lines = _Lines(text)
    out = []
    for kind, start, end, value, example, benign, note in _resolve(cands):
        line, col = lines.locate(start)
        out.append(PiiFinding(kind, line, col, col + (end - start) - 1, mask(kind, value), start, end,
                              example, benign, note))
    return out


def contains_pii(text: str) -> bool:
    """True when `text` holds PII that counts (benign and example findings are ignored)."""
    return any(f.counts for f in find_pii(text))


def redact_pii(text: str, include_benign: bool = False) -> str:
    """`text` with each counting finding (and benign/example ones if asked) replaced by
    `[PII:kind]`."""
    parts, pos = [], 0
    for f in find_pii(text):
        if f.counts or include_benign:
            parts += [text[pos:f.start], f"[PII:{f.kind}]"]
            pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Optional Presidio engine (never a dependency).

_PRESIDIO_KINDS = {
    "EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "credit_card",
    "IBAN_CODE": "iban", "US_SSN": "ssn", "UK_NINO": "nino", "IP_ADDRESS": "ip",
}
PRESIDIO_MIN_SCORE = 0.5


@lru_cache(maxsize=1)
def _presidio_analyzer():
    try:
        from presidio_analyzer import AnalyzerEngine  # type: ignore[import-not-found]
    except ImportError:
        log.warning("DIRENG_PII_ENGINE=presidio but presidio-analyzer is not installed; using the regex engine")
        return None
    return AnalyzerEngine()


def _presidio_candidates(text: str) -> list[Candidate]:
    analyzer = _presidio_analyzer()
    if analyzer is None:
        return []
    out = []
    for r in analyzer.analyze(text=text, language="en"):
        if r.score < PRESIDIO_MIN_SCORE:
            continue
        value = text[r.start:r.end]
        kind = _PRESIDIO_KINDS.get(r.entity_type, r.entity_type.lower())
        if kind == "ip":
            kind = "ipv6" if ":" in value else "ipv4"
            try:
                mask(kind, value)
            except ValueError:
                kind = "ip"
        out.append((kind, r.start, r.end, value, False, False, f"presidio {r.entity_type} {r.score:.2f}"))
    return out
