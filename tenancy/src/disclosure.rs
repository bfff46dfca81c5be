//! What tenant-scoped callers are told of failures inside the plane. Error chains name hosts,
//! ports, buckets, file paths and SDK internals: shown to a tenant, a Kafka connection error
//! becomes a port scanner aimed at the plane's network. Tenants get a class and a short
//! message; the full chain stays in the record platform-admins read and in the server log.

/// The part of a stored tenant `status_reason` a tenant may read. Reasons are written as
/// `<what failed, in the plane's own words>: <cause chain>`; only the first part is shown.
pub fn status_reason(stored: &str) -> String {
    match stored.split_once(": ") {
        Some((public, _)) => format!("{public}; the cause is in the server log for the platform's operators"),
        None => stored.to_owned(),
    }
}

/// What a tenant is told of a failed worker, whatever its error: which worker, not why.
pub fn worker_error(kind: &str, worker_id: &str) -> String {
    format!(
        "the {kind} worker failed; its cause is in the server log and the worker record for the \
         platform's operators (worker {worker_id})"
    )
}

/// What recorded run errors start with, before the class.
const RUN_FAILURE: &str = "maintenance failed with ";
/// The error the store records for a run whose executor stopped renewing its lease.
pub const LEASE_EXPIRED: &str = "lease expired (the process running it stopped)";

/// How a failed maintenance run's error is recorded: the failure's class in the plane's own
/// words (no `": "` in them), then the cause chain. Platform-admins read it whole; tenants get
/// [`run_error`] of it, the class only: a storage error's chain names buckets, paths and hosts
/// of the plane.
pub fn run_failure(class: crate::kind::Class, chain: &str) -> String {
    use crate::kind::ErrorKind;
    let what = match class.kind {
        ErrorKind::Invalid | ErrorKind::TooLarge => "the table's contents were refused",
        ErrorKind::Conflict => "the table's or the tenant's state stopped it",
        ErrorKind::Unavailable | ErrorKind::Throttled => "a dependency was unavailable",
        ErrorKind::NotFound => "something the run needed was gone",
        ErrorKind::Quota => "a quota was reached",
        ErrorKind::Internal => "an internal error",
    };
    format!("{RUN_FAILURE}{} ({what}): {chain}", class.code)
}

/// The part of a run's recorded error a tenant may read: the class of one recorded by
/// [`run_failure`], the lease expiry as is, and for anything else (errors recorded before
/// runs were classified) no more than that the run failed.
pub fn run_error(stored: &str) -> String {
    if stored.starts_with(RUN_FAILURE) {
        status_reason(stored)
    } else if stored == LEASE_EXPIRED {
        stored.to_owned()
    } else {
        "maintenance failed; the cause is in the server log for the platform's operators".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_keeps_the_planes_own_words_and_drops_the_chain() {
        let shown = status_reason(
            "step bucket failed after 3 attempts: storage: cannot create /var/lib/lake/x: Not a directory (os error 20)",
        );
        assert!(
            shown.starts_with("step bucket failed after 3 attempts;"),
            "{shown}"
        );
        assert!(
            !shown.contains("/var/lib") && !shown.contains("os error"),
            "{shown}"
        );
        assert_eq!(status_reason("migrating to dedicated"), "migrating to dedicated");
    }

    #[test]
    fn a_run_failure_shows_tenants_its_class_and_admins_its_cause() {
        let class = crate::kind::ErrorKind::Unavailable.coded(crate::kind::STORAGE_UNAVAILABLE);
        let recorded = run_failure(
            class,
            "storage: dispatch failure: connect to 10.0.3.7:9000 refused",
        );
        assert!(
            recorded.ends_with("connect to 10.0.3.7:9000 refused"),
            "{recorded}"
        );
        let shown = status_reason(&recorded);
        assert!(
            shown.starts_with("maintenance failed with storage-unavailable (a dependency was unavailable);"),
            "{shown}"
        );
        assert!(
            !shown.contains("10.0.3.7") && !shown.contains("dispatch"),
            "{shown}"
        );
        assert_eq!(run_error(&recorded), shown);
        assert_eq!(run_error(LEASE_EXPIRED), LEASE_EXPIRED);
        // Recorded before runs were classified: a bare chain shows nothing of itself.
        let old = run_error("storage unavailable at s3://lake-internal-7/acme");
        assert!(
            old.starts_with("maintenance failed;") && !old.contains("s3://"),
            "{old}"
        );
    }

    #[test]
    fn a_worker_error_names_the_worker_only() {
        let shown = worker_error("ingest", "ingest-acme-0190");
        assert!(shown.contains("ingest-acme-0190") && shown.contains("ingest worker failed"));
    }
}
