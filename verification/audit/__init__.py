"""Post-hoc audit of recorded rollouts: step-by-step checks (:mod:`.checks`), reports
(:mod:`.report`) and the throughput benchmark (:mod:`.bench`).  Rollouts are read through the
contract :mod:`reachsafe.rollouts`."""

from .checks import AuditResult, CertificateItem, CheckResult, audit, recheck_certificate

__all__ = ["CheckResult", "CertificateItem", "AuditResult", "audit", "recheck_certificate"]
