//! The harness's end-of-test checks fire: a test that leaves the audit chain broken, or an
//! outbox row leased, fails when its [`Env`] is dropped (on either backend).

use crate::common::*;
use cpis_domain::{AuditActor, AuditEntry, Clock};

/// Drops `value`: the panic message, if dropping it panicked.
pub fn drop_message<T>(value: T) -> Option<String> {
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value)));
    dropped.err().map(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

fn audited(env: &Env, n: usize) {
    for i in 0..n {
        env.store
            .append_audit(&AuditEntry::new(
                env.clock.now(),
                AuditActor::anonymous(),
                format!("test.entry.{i}"),
                None,
            ))
            .unwrap();
    }
}

#[test]
fn an_intact_chain_passes_the_end_of_test_checks() {
    let env = Env::with(&[]);
    audited(&env, 3);
    assert_eq!(drop_message(env), None);
}

#[test]
fn an_edited_audit_entry_fails_the_test_when_the_env_is_dropped() {
    let env = Env::with(&[]);
    audited(&env, 3);
    cpis_testkit::tamper_with_audit_log(
        &env.db_url(),
        "UPDATE audit_log SET action = 'test.edited' WHERE seq = 2",
    )
    .unwrap();
    let message = drop_message(env).expect("dropping the env panics");
    assert!(
        message.contains("audit chain broken at entry 2"),
        "{message}"
    );
}

#[test]
fn a_deleted_audit_entry_fails_the_test_when_the_env_is_dropped() {
    let env = Env::with(&[]);
    audited(&env, 3);
    cpis_testkit::tamper_with_audit_log(&env.db_url(), "DELETE FROM audit_log WHERE seq = 2")
        .unwrap();
    let message = drop_message(env).expect("dropping the env panics");
    assert!(
        message.contains("audit chain broken at entry 2"),
        "{message}"
    );
}
