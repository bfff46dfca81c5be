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
    fn a_worker_error_names_the_worker_only() {
        let shown = worker_error("ingest", "ingest-acme-0190");
        assert!(shown.contains("ingest-acme-0190") && shown.contains("ingest worker failed"));
    }
}
