//! Other tables' foreign keys to a table the plan moves (`inbound_foreign_keys: drop` or
//! `emulate`): what dropping them gives up, in words for `plan validate`, and how
//! rollback gives them back: re-added NOT VALID inside the rollback transaction (so it
//! scans nothing under its locks), then validated right after it, each in a
//! transaction of its own. [`crate::fk_emulation`] keeps their meaning in between.

use crate::catalog::{FkAction, InboundFk};
use crate::ident::{dollar_quote, quote_ident, quote_literal};
use crate::model::Job;
use crate::stmt::{LockPolicy, Stmt};

/// The key's definition, naming the referenced table by its qualified name (so it does
/// not depend on the search_path of the session that adds it back).
pub fn definition(job: &Job, fk: &InboundFk) -> String {
    let mut def = format!(
        "FOREIGN KEY ({}) REFERENCES {} ({})",
        quote_list(&fk.columns),
        job.source.quoted(),
        quote_list(&fk.referenced_columns)
    );
    if fk.match_full {
        def.push_str(" MATCH FULL");
    }
    def.push_str(&format!(" ON UPDATE {}", fk.on_update.sql()));
    def.push_str(&format!(" ON DELETE {}", fk.on_delete.sql()));
    if matches!(fk.on_delete, FkAction::SetNull | FkAction::SetDefault)
        && !fk.delete_set_columns.is_empty()
    {
        def.push_str(&format!(" ({})", quote_list(&fk.delete_set_columns)));
    }
    if fk.deferrable {
        def.push_str(if fk.deferred {
            " DEFERRABLE INITIALLY DEFERRED"
        } else {
            " DEFERRABLE"
        });
    }
    def
}

/// Rollback: the key back, NOT VALID so the locked transaction scans nothing; on a
/// partitioned table, which PostgreSQL cannot give a NOT VALID key, checked in full.
pub fn add_back(job: &Job, fk: &InboundFk) -> Stmt {
    let (not_valid, note) = if fk.referencing_partitioned {
        ("", "back and checked in full inside the locked transaction: PostgreSQL cannot add a key to a partitioned table NOT VALID, so the application waits for this scan")
    } else if fk.validated {
        (" NOT VALID", "back NOT VALID inside the locked transaction, so it scans nothing; validated right after it commits")
    } else {
        (" NOT VALID", "back NOT VALID, as it was before cutover")
    };
    Stmt::noted(
        format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {}{not_valid}",
            fk.table_name.quoted(),
            quote_ident(&fk.name),
            definition(job, fk)
        ),
        note,
    )
}

/// After the rollback commits: the key validated in a transaction of its own (SHARE
/// UPDATE EXCLUSIVE: the application keeps reading and writing). Skipped when already
/// valid or gone, so running it again (an interrupted rollback) is harmless.
pub fn validate_back(fk: &InboundFk, lock: &LockPolicy) -> Option<Stmt> {
    if !fk.validated || fk.referencing_partitioned {
        return None;
    }
    let body = format!(
        "\nBEGIN\n    IF EXISTS (SELECT FROM pg_catalog.pg_constraint WHERE conrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({}) AND conname OPERATOR(pg_catalog.=) {} AND NOT convalidated) THEN\n        SET LOCAL lock_timeout = '{}ms';\n        ALTER TABLE {} VALIDATE CONSTRAINT {};\n    END IF;\nEND\n",
        fk.table_name.literal(),
        quote_literal(&fk.name),
        lock.lock_timeout.as_millis().max(1),
        fk.table_name.quoted(),
        quote_ident(&fk.name)
    );
    Some(Stmt::noted(
        format!("DO {}", dollar_quote(&body)),
        format!(
            "{} valid again: one transaction of its own after the rollback (run again by `hyperswap rollback` or `plan apply` if interrupted)",
            fk.name
        ),
    ))
}

/// What `inbound_foreign_keys: drop` gives up for `fk`, in words.
pub fn losses(fk: &InboundFk) -> String {
    let mut lost = vec![format!(
        "the check that each new or changed {} row's ({}) exists in the referenced table{}",
        fk.table_name,
        fk.columns.join(", "),
        if fk.match_full { " (MATCH FULL)" } else { "" }
    )];
    lost.push(match fk.on_delete {
        FkAction::Cascade => "ON DELETE CASCADE: deleting a referenced row no longer deletes its children".into(),
        FkAction::SetNull => "ON DELETE SET NULL: deleting a referenced row no longer clears its children's reference".into(),
        FkAction::SetDefault => "ON DELETE SET DEFAULT: deleting a referenced row no longer resets its children's reference".into(),
        FkAction::Restrict => "ON DELETE RESTRICT: a referenced row with children can be deleted, orphaning them".into(),
        FkAction::NoAction => "ON DELETE NO ACTION: a referenced row with children can be deleted, orphaning them".into(),
    });
    lost.push(match fk.on_update {
        FkAction::Cascade => "ON UPDATE CASCADE: changing a referenced key no longer changes its children".into(),
        FkAction::SetNull => "ON UPDATE SET NULL: changing a referenced key no longer clears its children's reference".into(),
        FkAction::SetDefault => "ON UPDATE SET DEFAULT: changing a referenced key no longer resets its children's reference".into(),
        FkAction::Restrict => "ON UPDATE RESTRICT: a referenced key with children can be changed, orphaning them".into(),
        FkAction::NoAction => "ON UPDATE NO ACTION: a referenced key with children can be changed, orphaning them".into(),
    });
    lost.join("; ")
}

fn quote_list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}
