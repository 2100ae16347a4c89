"""Security layer: secret detection, the encrypted vault, redaction, the audit log, and API
tokens (`keys`: RS256 signing keys and JWKS; `tokens`: mint/verify scoped JWTs; `scopes`).
"""
