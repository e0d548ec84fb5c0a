"""Post-hoc audit of recorded rollouts: step-by-step checks (:mod:`.checks`), reports
(:mod:`.report`) and the throughput benchmark (:mod:`.bench`)."""

from .checks import (REQUIRED_ARRAYS, REQUIRED_META, AuditResult, CertificateItem, CheckResult, Rollouts, audit,
                     load_rollouts, recheck_certificate, resolve_rollouts_path)

__all__ = ["Rollouts", "load_rollouts", "resolve_rollouts_path", "CheckResult", "CertificateItem",
           "AuditResult", "audit", "recheck_certificate", "REQUIRED_ARRAYS", "REQUIRED_META"]
